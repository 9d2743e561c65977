/** Teardown for a test file: what it started, closed newest first; one failure never skips the rest. */
export async function closeNewestFirst(closers: ReadonlyArray<() => Promise<unknown> | unknown>): Promise<void> {
  for (const close of [...closers].reverse()) {
    try {
      await close();
    } catch {
      // best effort: the next closer still runs
    }
  }
}
