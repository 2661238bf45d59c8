// CNI spec versions: which weft speaks, how they compare, and which commands each one has.
// The versions before 0.3.0 have a different result type (ip4/ip6) and no chaining; weft does not speak them.

import { CniError, ErrorCode } from "./errors";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = "1.1.0";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";

/** The first spec version that has each command: CHECK came with 0.4.0, GC and STATUS with 1.1.0. */
export const COMMAND_SINCE: Readonly<Record<CniCommand, CniVersion>> = {
  ADD: "0.3.0",
  DEL: "0.3.0",
  VERSION: "0.3.0",
  CHECK: "0.4.0",
  GC: "1.1.0",
  STATUS: "1.1.0",
};

export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/**
 * The VERSION command's output. It answers in the version the runtime asked with when weft speaks it
 * (the `cniVersion` of VERSION's stdin), otherwise in the latest one.
 */
export function versionInfo(requested?: string): VersionInfo {
  const cniVersion = requested !== undefined && isSupported(requested) ? requested : LATEST_VERSION;
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** "1.0.0" → [1, 0, 0]. Only plain major.minor.patch; undefined for anything else. */
export function parseVersion(text: string): [number, number, number] | undefined {
  const match = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/.exec(text);
  if (!match) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** Negative, zero or positive as a is older than, the same as, or newer than b. Throws CniError 1 if either is not a version. */
export function compareVersions(a: string, b: string): number {
  const left = parseVersion(a);
  const right = parseVersion(b);
  if (!left || !right) {
    const bad = left ? b : a;
    throw new CniError(ErrorCode.IncompatibleVersion, `Incompatible CNI version: "${bad}" is not a version (expected major.minor.patch)`);
  }
  for (let index = 0; index < 3; index++) {
    const difference = left[index]! - right[index]!;
    if (difference !== 0) return difference;
  }
  return 0;
}

export function isSupported(cniVersion: string): cniVersion is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion);
}

/** Narrows a config's cniVersion to one weft speaks, or throws CniError 1 naming the versions weft supports. */
export function checkSupported(cniVersion: string): CniVersion {
  if (isSupported(cniVersion)) return cniVersion;
  throw new CniError(
    ErrorCode.IncompatibleVersion,
    `Incompatible CNI version: config version "${cniVersion}" is not supported; weft supports ${SUPPORTED_VERSIONS.join(", ")}`,
  );
}

/**
 * Throws CniError 1 when the command did not exist in the config's version: CHECK with a 0.3.x config, GC or
 * STATUS with anything older than 1.1.0. Code 1 is what the reference plugins' skeleton returns here ("config
 * version does not allow CHECK"); the spec's code 2 is for unsupported config fields, not commands.
 */
export function checkCommandAllowed(command: CniCommand, cniVersion: string): void {
  const since = COMMAND_SINCE[command];
  if (compareVersions(cniVersion, since) < 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `Incompatible CNI version: config version ${cniVersion} does not allow ${command} (it needs ${since} or later)`,
    );
  }
}

/**
 * Version negotiation of a 1.1 config list: of the versions its `cniVersions` names, the newest that weft
 * speaks; undefined when none. Entries that are not versions are skipped, as a runtime would.
 */
export function pickVersion(cniVersions: readonly string[]): CniVersion | undefined {
  let best: CniVersion | undefined;
  for (const candidate of cniVersions) {
    if (!isSupported(candidate)) continue;
    if (best === undefined || compareVersions(candidate, best) > 0) best = candidate;
  }
  return best;
}
