/**
 * Test gates: hold an operation (a fake backup's or tracker's answer) until the test says so, and
 * wait for queued work to run, so ordering tests depend on nothing but the order of events.
 */

/** A promise the test resolves when it chooses. */
export interface Gate {
  readonly opened: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/**
 * Resolves after every microtask already queued (and those they queue) has run: one macrotask
 * turn, with no wall-clock wait. Use it to let in-process work settle before asserting what has
 * or has not happened.
 */
export function settled(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
