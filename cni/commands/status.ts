// STATUS: can this node take an ADD now? Not while the agent has not written the subnet file, nor when every
// address of a range is taken. Both are code 50 (the plugin cannot service ADD; running pods are unaffected).
import { parseNetConf } from "../config";
import type { CniEnv } from "../env";
import { measureUsage } from "../ipam";
import { ipamCall, resolve } from "../network";
import { CniError, ErrorCode, isCniError } from "../spec/errors";
import { checkCommandAllowed } from "../spec/version";

export function runStatus(_env: CniEnv, stdin: Buffer): unknown {
  const conf = parseNetConf(stdin);
  checkCommandAllowed("STATUS", conf.cniVersion);
  let network;
  try {
    network = resolve(conf);
  } catch (error) {
    if (isCniError(error, ErrorCode.TryAgainLater)) {
      throw new CniError(ErrorCode.PluginNotAvailable, `Plugin not available: ${error.msg}`, { cause: error });
    }
    throw error;
  }
  const usage = ipamCall(() => measureUsage(network.store, network.ipam.rangeSets));
  const exhausted = usage.find((set) => set.exhausted);
  if (exhausted) {
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `Plugin not available: range ${exhausted.range} of network "${conf.name}" is exhausted (${exhausted.used} of ${exhausted.capacity} addresses in use)`,
    );
  }
  return undefined;
}
