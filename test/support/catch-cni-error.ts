import { CniError } from "../../cni/spec/errors";

/** The CniError that `fn` throws; fails the test when it throws anything else, or nothing. */
export function catchCniError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CniError) return error;
    throw new Error(`expected a CniError, got ${String(error)}`);
  }
  throw new Error("expected a CniError, nothing was thrown");
}
