// Loads koffi's native addon straight from its .node file.
//
// In the single executable the addon is an embedded asset: a native addon cannot be loaded from memory, so it
// is written once to a root-owned cache directory (content-addressed name, temp file + rename) and dlopen'ed
// from there. Everywhere else (tests, the bundled agent in development) it is found in node_modules.
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** The subset of koffi's native API that native/libc uses. */
export interface Koffi {
  load(path: string): { func(signature: string): (...args: unknown[]) => unknown };
  errno(): number;
  version: string;
}

const ADDON_ASSET = "koffi.node";
const DEFAULT_CACHE_DIR = "/run/weft/lib";

interface SeaAddon {
  bytes: Buffer;
  /** Computed at build time, so start-up does not hash the addon on every run. */
  digest: string;
}

function readSeaAsset(): SeaAddon | undefined {
  // getBuiltinModule, not createRequire: making a require function costs the plugin ~1 ms of path resolution.
  const sea = process.getBuiltinModule("node:sea");
  if (!sea?.isSea()) return undefined;
  // latin1 (a hex digest), not getAsset's utf8: no TextDecoder to set up.
  const digest = Buffer.from(sea.getRawAsset(`${ADDON_ASSET}.sha256`)).toString("latin1").trim();
  return { bytes: Buffer.from(sea.getRawAsset(ADDON_ASSET)), digest };
}

function* cacheDirCandidates(): Generator<string | undefined> {
  yield process.env.WEFT_CACHE_DIR;
  yield DEFAULT_CACHE_DIR;
  // Loaded only if needed: node:os costs the plugin ~0.4 ms of start-up.
  yield join(process.getBuiltinModule("node:os").tmpdir(), `weft-${process.getuid?.() ?? 0}`);
}

let cacheDir: string | undefined;

/**
 * A directory only root (or the current user) can write to, so that nobody can swap what is cached there (the
 * addon, the plugin's code cache, the bridge lock files) under us. Created on first use; found once per process
 * (one stat(2) once it exists), however many callers ask.
 */
export function privateCacheDir(): string {
  cacheDir ??= findPrivateCacheDir();
  return cacheDir;
}

function findPrivateCacheDir(): string {
  for (const dir of cacheDirCandidates()) {
    if (!dir) continue;
    try {
      const st = statSync(dir, { throwIfNoEntry: false }) ?? (mkdirSync(dir, { recursive: true, mode: 0o700 }), statSync(dir));
      if (st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0) return dir;
    } catch {
      // not writable here: try the next candidate
    }
  }
  throw new Error("Cannot load the FFI addon: no private directory to extract it to (set WEFT_CACHE_DIR)");
}

function extractAddon({ bytes, digest }: SeaAddon): string {
  const dir = privateCacheDir();
  const file = join(dir, `koffi-${digest.slice(0, 16)}.node`);
  try {
    if (statSync(file).size === bytes.length) return file;
  } catch {
    // not extracted yet
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o500 });
  renameSync(tmp, file);
  return file;
}

/** The bundled agent ships koffi.node beside its bundle (dist/agent/, /opt/weft/agent/ in the image). */
function findAddonBesideBundle(): string | undefined {
  const file = join(dirname(new URL(import.meta.url).pathname), ADDON_ASSET);
  return /\.[cm]js$/.test(import.meta.url) && existsSync(file) ? file : undefined;
}

function findInstalledAddon(): string {
  // node:module on demand: the executable never comes here, and loading it costs start-up.
  const require = process.getBuiltinModule("node:module").createRequire(import.meta.url);
  return require.resolve(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`);
}

let cached: Koffi | undefined;

export function loadKoffi(): Koffi {
  if (cached) return cached;
  const asset = readSeaAsset();
  const file = asset ? extractAddon(asset) : (findAddonBesideBundle() ?? findInstalledAddon());
  const module = { exports: {} as Koffi };
  process.dlopen(module, file);
  cached = module.exports;
  return cached;
}
