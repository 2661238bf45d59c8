// VERSION: the versions weft speaks. The runtime may send a config (or nothing); its cniVersion picks the answer's.
import { versionInfo } from "../spec/version";

export function runVersion(stdin: Buffer): unknown {
  let requested: string | undefined;
  try {
    const parsed = JSON.parse(stdin.toString("utf8")) as { cniVersion?: unknown };
    if (typeof parsed.cniVersion === "string") requested = parsed.cniVersion;
  } catch {
    // VERSION needs no config: anything on stdin that is not one is ignored.
  }
  return versionInfo(requested);
}
