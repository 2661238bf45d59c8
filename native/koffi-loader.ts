// Loads koffi's native addon straight from its .node file.
//
// In the single executable the addon is an embedded asset: a native addon cannot be loaded from memory, so it
// is written once to a root-owned cache directory (content-addressed name, temp file + rename) and dlopen'ed
// from there. Everywhere else (tests, the bundled agent in development) it is found in node_modules.
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";

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
  let sea: { isSea(): boolean; getRawAsset(name: string): ArrayBuffer; getAsset(name: string, encoding: string): string } | undefined;
  try {
    sea = createRequire(import.meta.url)("node:sea");
  } catch {
    return undefined;
  }
  if (!sea?.isSea()) return undefined;
  return { bytes: Buffer.from(sea.getRawAsset(ADDON_ASSET)), digest: sea.getAsset(`${ADDON_ASSET}.sha256`, "utf8").trim() };
}

/** A directory only root (or the current user) can write to, so that nobody can swap the addon under us. */
function privateCacheDir(): string {
  const candidates = [process.env.WEFT_CACHE_DIR, DEFAULT_CACHE_DIR, path.join(os.tmpdir(), `weft-${process.getuid?.() ?? 0}`)];
  for (const dir of candidates) {
    if (!dir) continue;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const st = fs.statSync(dir);
      if (st.uid === process.getuid?.() && (st.mode & 0o022) === 0) return dir;
    } catch {
      // not writable here: try the next candidate
    }
  }
  throw new Error("Cannot load the FFI addon: no private directory to extract it to (set WEFT_CACHE_DIR)");
}

function extractAddon({ bytes, digest }: SeaAddon): string {
  const dir = privateCacheDir();
  const file = path.join(dir, `koffi-${digest.slice(0, 16)}.node`);
  try {
    if (fs.statSync(file).size === bytes.length) return file;
  } catch {
    // not extracted yet
  }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, bytes, { mode: 0o500 });
  fs.renameSync(tmp, file);
  return file;
}

/** The bundled agent ships koffi.node beside its bundle (dist/agent/, /opt/weft/agent/ in the image). */
function findAddonBesideBundle(): string | undefined {
  const file = path.join(path.dirname(new URL(import.meta.url).pathname), ADDON_ASSET);
  return import.meta.url.endsWith(".cjs") && fs.existsSync(file) ? file : undefined;
}

function findInstalledAddon(): string {
  const require = createRequire(import.meta.url);
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
