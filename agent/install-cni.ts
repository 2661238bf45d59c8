// `weft-agent install-cni`: copies the weft plugin into the node's CNI bin dir (the DaemonSet's initContainer).
// The copy goes to a temp name in the target directory, is fsynced, then renamed over the old file: a runtime
// executing /opt/cni/bin/weft meanwhile runs the old binary or the new one, never a half-written one. An
// identical file is left alone.
import fs from "node:fs";
import path from "node:path";
import { InstallError } from "./errors";

/** Returns "installed" or "unchanged". */
export function installCni(source: string, binDir: string): "installed" | "unchanged" {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch (error) {
    throw new InstallError(`Cannot install the CNI plugin: ${source} does not exist`, { cause: error });
  }
  if (!stat.isFile()) throw new InstallError(`Cannot install the CNI plugin: ${source} is not a file`);
  fs.mkdirSync(binDir, { recursive: true });
  const target = path.join(binDir, "weft");
  if (sameContent(source, target, stat.size)) return "unchanged";
  const temp = path.join(binDir, `.weft.${process.pid}.tmp`);
  try {
    fs.copyFileSync(source, temp);
    fs.chmodSync(temp, 0o755);
    const fd = fs.openSync(temp, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, target);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw new InstallError(`Cannot install the CNI plugin into ${binDir}: ${(error as Error).message}`, { cause: error });
  }
  return "installed";
}

function sameContent(a: string, b: string, size: number): boolean {
  try {
    if (fs.statSync(b).size !== size) return false;
    const chunk = 1 << 20;
    const fa = fs.openSync(a, "r");
    const fb = fs.openSync(b, "r");
    try {
      const ba = Buffer.alloc(chunk);
      const bb = Buffer.alloc(chunk);
      for (let offset = 0; offset < size; offset += chunk) {
        const na = fs.readSync(fa, ba, 0, chunk, offset);
        const nb = fs.readSync(fb, bb, 0, chunk, offset);
        if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      }
      return true;
    } finally {
      fs.closeSync(fa);
      fs.closeSync(fb);
    }
  } catch {
    return false;
  }
}
