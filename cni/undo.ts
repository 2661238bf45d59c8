// Rollback for ADD: push an undo step right after each side effect; on failure run them newest first. A failing
// undo step must not hide the error that caused the rollback, so their errors are collected, not thrown.
export class UndoStack {
  readonly #steps: { what: string; undo: () => void }[] = [];

  push(what: string, undo: () => void): void {
    this.#steps.push({ what, undo });
  }

  /** Runs every step, newest first; returns the descriptions of steps that failed. */
  run(): string[] {
    const failed: string[] = [];
    for (const step of this.#steps.reverse()) {
      try {
        step.undo();
      } catch (error) {
        failed.push(`${step.what}: ${(error as Error).message}`);
      }
    }
    this.#steps.length = 0;
    return failed;
  }
}
