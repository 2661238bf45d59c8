// Opening the container's network namespace (CNI_NETNS), with the spec's error when it is not one.
import { NetnsError, openNetns } from "../native/netns";
import { CniError, ErrorCode } from "./spec/errors";

export function openPodNetns(path: string): number {
  try {
    return openNetns(path);
  } catch (error) {
    if (error instanceof NetnsError) {
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `CNI_NETNS ${path}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
