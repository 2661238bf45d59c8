// An esbuild plugin shared by both builds (scripts/build.mjs, scripts/build-agent.mjs).
import fs from "node:fs";

// ip-num builds 13 constant ranges (private, documentation, loopback, …) when it is loaded; parsing their IPv6
// text costs the plugin ~15 ms of start-up on every pod ADD (and the agent as much per start), and weft never
// reads them. This turns each into a getter that builds it on first use: same values, same behaviour, nothing paid up front. Pinned to ip-num's
// layout: the build fails if the expected statics are not found, so an upgrade cannot silently undo it.
const IPNUM_LAZY_STATICS = 13;
export const lazyIpNumStatics = {
  name: "lazy-ip-num-statics",
  setup(build) {
    build.onLoad({ filter: /[\\/]ip-num[\\/]dist[\\/]src[\\/]IPNumber\.js$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, "utf8");
      let count = 0;
      const contents = source.replace(/^(IPv[46])\.([A-Z_]+) = ([^;]*(?:fromCidr|fromDecimalDottedString)[^;]*);$/gm, (_, cls, name, value) => {
        count++;
        return `Object.defineProperty(${cls}, "${name}", { configurable: true, get() { const value = ${value}; Object.defineProperty(${cls}, "${name}", { value }); return value; } });`;
      });
      if (count !== IPNUM_LAZY_STATICS) throw new Error(`lazy-ip-num-statics: expected ${IPNUM_LAZY_STATICS} statics in ${args.path}, found ${count}`);
      return { contents, loader: "js" };
    });
  },
};
