// The single executable's entry point (scripts/build.mjs): runs the plugin, cni/main.ts bundled and embedded as
// an asset, compiled with a V8 code cache that the executable keeps on disk beside its extracted FFI addon.
//
// Why: V8 compiles a function on its first call, and a plugin process calls each function once, so compiling is
// most of its work. Node's own code cache for an executable's main script is made at build time, before anything
// has run: it holds the top level only. A cache made after a command has run (Script#createCachedData) holds
// every function that command compiled, and a later run that is given it compiles almost nothing: ADD's own work
// drops by ~8 ms (docs/benchmarks.md).
//
// The cache file starts with a line naming the commands that have completed with it; a run of a command not in
// that list, on success, writes a new cache: what it was given plus what it compiled. So does any run whose cache
// was missing or rejected by V8 (another Node, other V8 flags). Written to a temp file and renamed, so a reader
// sees a whole cache or none; concurrent first runs just write it more than once. The cache is an optimisation
// only: without a private cache directory, or on any error around it, the plugin runs uncached.
// WEFT_DEBUG=1 reports on stderr whether the cache was used.
import { readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { getRawAsset } from "node:sea";
import { Script } from "node:vm";
import { privateCacheDir } from "../native/koffi-loader";

/** The bundled plugin (dist/weft.cjs), ASCII only (the build checks). */
const PLUGIN_ASSET = "weft.cjs";
/** Set by the build (esbuild's `define`): a digest of the plugin bundle and of the Node that runs it. */
declare const WEFT_PLUGIN_DIGEST: string;

const HEADER = "weft-code-cache 1";
const COMMANDS = new Set(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]);

interface CodeCache {
  commands: string[];
  data: Buffer;
}

/** The cache file's content, or undefined when there is none or it is not one of ours. */
function readCodeCache(file: string): CodeCache | undefined {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch {
    return undefined;
  }
  const newline = content.indexOf(10);
  const header = newline < 0 ? "" : content.toString("latin1", 0, newline);
  if (!header.startsWith(`${HEADER} `)) return undefined;
  return { commands: header.slice(HEADER.length + 1).split(",").filter(Boolean), data: content.subarray(newline + 1) };
}

/** Temp file (exclusive: a writer never writes into another's) and rename: readers see a whole file or none. */
function writeCodeCache(file: string, { commands, data }: CodeCache): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, Buffer.concat([Buffer.from(`${HEADER} ${commands.join(",")}\n`, "latin1"), data]), { mode: 0o600, flag: "wx" });
    renameSync(tmp, file);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}

function cacheFile(): string | undefined {
  try {
    return join(privateCacheDir(), `weft-${WEFT_PLUGIN_DIGEST.slice(0, 16)}.code-cache`);
  } catch {
    return undefined;
  }
}

function run(): void {
  const file = cacheFile();
  const cache = file === undefined ? undefined : readCodeCache(file);
  // latin1, not getAsset's utf8: the same text for ASCII, without a TextDecoder (~0.2 ms to set up).
  const plugin = Buffer.from(getRawAsset(PLUGIN_ASSET)).toString("latin1");
  // The same wrapper as Node's for a CommonJS module: the bundle runs exactly as the executable's main script did.
  const source = `(function (exports, require, module, __filename, __dirname) {${plugin}\n})`;
  const script = new Script(source, { filename: __filename, cachedData: cache?.data });
  const used = cache !== undefined && !script.cachedDataRejected;
  if (process.env.WEFT_DEBUG) {
    writeSync(2, `weft: code cache ${file ?? "(no private directory)"}: ${cache === undefined ? "none" : used ? "used" : "rejected"}\n`);
  }

  if (file !== undefined) {
    const command = COMMANDS.has(process.env.CNI_COMMAND ?? "") ? (process.env.CNI_COMMAND as string) : "none";
    process.on("exit", (code) => {
      const known = used ? cache.commands : [];
      const learned = code === 0 && !known.includes(command);
      if (used && !learned) return;
      try {
        writeCodeCache(file, { commands: learned ? [...known, command] : known, data: script.createCachedData() });
      } catch {
        // the next run compiles as this one did, and tries again
      }
    });
  }
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper(module.exports, require, module, __filename, __dirname);
}

run();
