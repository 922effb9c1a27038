/**
 * Test-only disk fault injection: when the environment variable `TRACKMIRROR_FAULT_FILE` names a
 * file, the backup's journal (and its secondaries) and the host's primary volumes read it, and a
 * line `TARGET=KIND` makes that target's writes fail as the disk would:
 *
 *   journal=enospc    journal=eio      (backup: a group commit fails before any byte is written)
 *   primary=enospc    primary=eio      (host: a write to a primary image fails)
 *   secondary=enospc  secondary=eio    (backup: the applier cannot write the secondaries, so the
 *                                       journal fills up: "Journal full")
 *
 * Removing the line heals. The thrown error looks like the kernel's (an Error whose `code` is
 * "ENOSPC" or "EIO", as Deno reports a real one), so the code that handles it is the code that
 * handles real disk errors. Other lines and `#` comments are ignored.
 *
 * Cost: the variable is read once, at start; unset, no check is made at all (`faultFileFromEnv`
 * returns undefined). Set, `check` re-reads the file at most once per `faultRecheckMs`, so a test
 * sees its change take effect within that bound.
 */

/** The environment variable naming the fault file (a contract shared with the fault simulation). */
export const faultFileEnv = "TRACKMIRROR_FAULT_FILE";

/** Longest a change to the fault file goes unnoticed. */
export const faultRecheckMs = 50;

/** What can be made to fail. */
export type FaultTarget = "journal" | "primary" | "secondary";
/** How it fails: the errno a full disk or a failing disk gives. */
export type FaultKind = "enospc" | "eio";

const targets: readonly FaultTarget[] = ["journal", "primary", "secondary"];
const messages: Record<FaultKind, string> = {
  enospc: "No space left on device (os error 28)",
  eio: "Input/output error (os error 5)",
};

/** An error shaped like the one Deno throws for a real ENOSPC / EIO. */
export function diskError(kind: FaultKind, where: string): Error & { code: string } {
  return Object.assign(
    new Error(`${where}: ${messages[kind]} (injected by ${faultFileEnv})`),
    { code: kind.toUpperCase() },
  );
}

/** "ENOSPC" or "EIO" when `err` is that disk error (real or injected), else undefined. */
export function diskErrorCode(err: unknown): "ENOSPC" | "EIO" | undefined {
  const code = (err as { code?: unknown })?.code;
  return code === "ENOSPC" || code === "EIO" ? code : undefined;
}

/** Parses the fault file's text into the faults it switches on. */
export function parseFaults(text: string): Map<FaultTarget, FaultKind> {
  const faults = new Map<FaultTarget, FaultKind>();
  for (const raw of text.split("\n")) {
    const line = raw.trim().toLowerCase();
    const m = /^([a-z]+)=(enospc|eio)$/.exec(line);
    if (m && (targets as readonly string[]).includes(m[1])) {
      faults.set(m[1] as FaultTarget, m[2] as FaultKind);
    }
  }
  return faults;
}

/** The fault file as one process sees it. */
export class FaultFile {
  #faults = new Map<FaultTarget, FaultKind>();
  #readAt = -Infinity;

  constructor(
    readonly path: string,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The fault switched on for `target` now, if any (re-reads the file when it may have changed). */
  fault(target: FaultTarget): FaultKind | undefined {
    const t = this.now();
    if (t - this.#readAt >= faultRecheckMs) {
      this.#readAt = t;
      try {
        this.#faults = parseFaults(Deno.readTextFileSync(this.path));
      } catch {
        this.#faults = new Map(); // absent or unreadable: no faults
      }
    }
    return this.#faults.get(target);
  }

  /** Throws the disk error switched on for `target`; `where` names the file or operation. */
  check(target: FaultTarget, where: string): void {
    const kind = this.fault(target);
    if (kind) throw diskError(kind, where);
  }
}

/** The fault file named by `TRACKMIRROR_FAULT_FILE`, or undefined (the normal case: no checks). */
export function faultFileFromEnv(): FaultFile | undefined {
  let path: string | undefined;
  try {
    path = Deno.env.get(faultFileEnv);
  } catch {
    return undefined; // no env permission: no faults
  }
  return path ? new FaultFile(path) : undefined;
}
