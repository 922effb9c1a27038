/**
 * Injects a round's scheduled faults (`fault_plan.ts`) into a running `System` of real processes:
 * signals, proxy faults, fault-file lines, KV swaps and a second agent. Faults on the same target
 * (a process, a proxy, the fault file) take turns, so each one heals what it did before the next
 * starts; faults on different targets overlap (e.g. backup and tracker down at once).
 *
 * What a fault leaves to check is recorded, not asserted here: `recordLost` (the tracker's record
 * was replaced, so the host must ask for a checksum resync) and `violations` (a second agent was
 * accepted).
 */
import type { FaultKind, ScheduledFault } from "./fault_plan.ts";
import { freePort, startService } from "./service_process.ts";
import type { System } from "./system.ts";
import type { TcpProxy } from "./tcp_proxy.ts";

/** What the injector needs from the workload. */
export interface FaultHooks {
  /**
   * How often the host renews its lease (its `--lease-ms` / 3): kv-older keeps the newer record
   * at least this long (plus a margin), so the host has seen it before the older copy returns.
   */
  leaseRenewMs: number;
  /**
   * One write the model knows of, sent while the backup is unreachable, so the tracker must hold
   * a dirty mark for it (kv-older replaces the KV with a copy from before that mark).
   */
  trackedWrite(): Promise<void>;
}

/** How long the injector waits for the host to notice something (mode change, lease). */
const noticeMsMax = 10_000;
const pollMs = 50;
/**
 * Shortest time a fault-file line stays: the services look at the file at most every few hundred
 * milliseconds, so a shorter fault might never be seen.
 */
const faultFileMsMin = 1000;
/** Margin over a lease renewal interval for the host's renewal to have been answered. */
const renewMarginMs = 500;

export class FaultInjector {
  /** Faults injected so far, by kind. */
  readonly counts = new Map<FaultKind, number>();
  /** Faults that could not be injected as planned (e.g. no lease to contend), by kind. */
  readonly skipped = new Map<FaultKind, number>();
  /** A fault replaced the tracker's record this round: the host must say so. */
  recordLost = false;
  /** What went wrong that the product must never do (reset by `startRound`). */
  violations: string[] = [];
  readonly #locks = new Map<string, Promise<void>>();
  readonly #stopped = new Set<"tracker" | "backup">();

  constructor(
    private readonly sys: System,
    private readonly faultFile: string,
    private readonly hooks: FaultHooks,
  ) {}

  startRound(): void {
    this.recordLost = false;
    this.violations = [];
  }

  /** Runs every fault of `schedule` (each at its time, healed after its duration). */
  async run(schedule: readonly ScheduledFault[]): Promise<void> {
    const start = Date.now();
    await Promise.all(schedule.map(async (f) => {
      await sleep(Math.max(0, start + f.atMs - Date.now()));
      await this.#withLocks(targetsOf(f.kind), () => this.#inject(f));
    }));
  }

  /** Undoes anything left over (after a failure): SIGCONT, proxies, fault file, dead processes. */
  async healAll(): Promise<void> {
    for (const name of this.#stopped) this.sys[name].child.kill("SIGCONT");
    this.#stopped.clear();
    for (const p of this.#proxies()) healProxy(p);
    await Deno.remove(this.faultFile).catch(() => {});
    if (this.sys.tracker.exited) await this.sys.restartTracker();
    if (this.sys.backup.exited) await this.sys.restartBackup();
    if (this.sys.host.exited) await this.sys.restartHost();
  }

  async #inject(f: ScheduledFault): Promise<void> {
    this.counts.set(f.kind, (this.counts.get(f.kind) ?? 0) + 1);
    const { sys } = this;
    switch (f.kind) {
      case "kill-tracker":
        await sys.tracker.kill();
        await sleep(f.forMs);
        return sys.restartTracker();
      case "kill-backup":
        await sys.backup.kill();
        await sleep(f.forMs);
        return sys.restartBackup();
      case "kill-host":
        await sys.host.kill();
        await sleep(f.forMs);
        return sys.restartHost();
      case "stop-tracker":
      case "stop-backup":
        return this.#pause(f.kind === "stop-tracker" ? "tracker" : "backup", f.forMs);
      case "journal-enospc":
      case "journal-eio":
      case "primary-enospc":
      case "primary-eio":
      case "secondary-enospc":
      case "secondary-eio":
        return this.#faultLine(f.kind.replace("-", "="), f.forMs);
      case "kv-empty":
        return this.#kvEmpty(f.forMs);
      case "kv-older":
        return this.#kvOlder(f.forMs);
      case "second-agent-same-id":
        return this.#secondAgent(f.kind, "host0");
      case "second-agent-other-id":
        return this.#secondAgent(f.kind, "intruder");
      case "resync-during":
        return this.#resync(f.forMs);
      default:
        return this.#proxyFault(f);
    }
  }

  async #pause(name: "tracker" | "backup", forMs: number): Promise<void> {
    this.sys[name].child.kill("SIGSTOP");
    this.#stopped.add(name);
    await sleep(forMs);
    this.sys[name].child.kill("SIGCONT");
    this.#stopped.delete(name);
  }

  async #proxyFault(f: ScheduledFault): Promise<void> {
    const proxy = this.#proxyOf(f.kind);
    if (f.kind.endsWith("-delay")) proxy.delay(f.delayMs ?? 0);
    if (f.kind.endsWith("-hold")) proxy.hold();
    if (f.kind.endsWith("-refuse")) proxy.refuse(true);
    if (f.kind.endsWith("-cut") || f.kind.endsWith("-refuse")) proxy.cut();
    await sleep(f.forMs);
    healProxy(proxy);
  }

  /** The contract of TRACKMIRROR_FAULT_FILE: a line `journal=enospc` etc.; removing it heals. */
  async #faultLine(line: string, forMs: number): Promise<void> {
    await Deno.writeTextFile(this.faultFile, `${line}\n`);
    await sleep(Math.max(forMs, faultFileMsMin));
    await Deno.remove(this.faultFile).catch(() => {});
  }

  async #kvEmpty(forMs: number): Promise<void> {
    await this.sys.tracker.kill();
    for (const path of kvFiles(this.sys.kvPath)) await Deno.remove(path).catch(() => {});
    await sleep(forMs);
    await this.sys.restartTracker();
    this.recordLost = true;
  }

  /**
   * Copies the tracker's KV while it is down, makes the tracker take a dirty mark the copy lacks
   * (a write with the link refused), then puts the copy back.
   */
  async #kvOlder(forMs: number): Promise<void> {
    const { sys } = this;
    const copy = `${sys.dir}/kv-copy`;
    await Deno.remove(copy, { recursive: true }).catch(() => {});
    await Deno.mkdir(copy);
    await sys.tracker.kill();
    const files = kvFiles(sys.kvPath);
    for (const path of files) await copyIfExists(path, `${copy}/${basename(path)}`);
    await sys.restartTracker();
    const link = sys.linkProxy;
    if (!link) throw new Error("kv-older needs the system's linkProxy");
    link.refuse(true);
    link.cut();
    try {
      await this.#waitMode((mode) => mode !== "mirroring");
      await this.hooks.trackedWrite();
    } finally {
      healProxy(link);
    }
    await sleep(Math.max(forMs, this.hooks.leaseRenewMs + renewMarginMs));
    await sys.tracker.kill();
    for (const path of files) {
      await Deno.remove(path).catch(() => {});
      await copyIfExists(`${copy}/${basename(path)}`, path);
    }
    await sys.restartTracker();
    this.recordLost = true;
  }

  /**
   * Starts a second agent for the volume on another primary; it must stop at start-up with the
   * tracker's 409. Only contended while the first agent's lease runs (after a KV swap it may not).
   */
  async #secondAgent(kind: FaultKind, hostId: string): Promise<void> {
    const { sys } = this;
    if (!(await this.#leaseHeld())) {
      this.skipped.set(kind, (this.skipped.get(kind) ?? 0) + 1);
      return;
    }
    const second = `${sys.dir}/second`;
    await Deno.mkdir(second, { recursive: true });
    // Straight to the tracker and backup, not through the proxies: the question is whether a
    // reachable tracker refuses it (an agent that cannot reach the tracker starts anyway and
    // registers later; its marks, not its start, are what must be fenced then).
    const volume = `${sys.volume}=${second}/${sys.volume}.img:${sys.sizeBytes}`;
    let args = withFlag(sys.hostArgs, "--volume", volume);
    args = withFlag(args, "--nbd-port", "0");
    args = withFlag(args, "--host-id", hostId);
    args = withFlag(args, "--tracker", sys.tracker.url);
    args = withFlag(args, "--backup", sys.backup.url);
    try {
      const agent = await startService("host/main.ts", args, {
        port: freePort(),
        env: sys.env,
        readyMs: noticeMsMax,
      });
      await agent.kill();
      this.violations.push(
        `A second agent (host id "${hostId}", primary ${second}) was accepted for volume ` +
          `"${sys.volume}" while host0's lease ran:\n${agent.output().slice(-2000)}`,
      );
    } catch (err) {
      const text = (err as Error).message;
      if (!/409|leased/.test(text)) {
        this.violations.push(`A second agent failed without the tracker's 409:\n${text}`);
      }
    } finally {
      await Deno.remove(second, { recursive: true }).catch(() => {});
    }
  }

  /** Whether host0 holds an unexpired lease on the volume for a while yet. */
  async #leaseHeld(): Promise<boolean> {
    const deadline = Date.now() + noticeMsMax;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${this.sys.tracker.url}/v1/volumes/${this.sys.volume}`);
        const info = await res.json();
        if (res.ok && info.ownerHost === "host0" && info.leaseExpiresAt > Date.now() + 500) {
          return true;
        }
      } catch {
        // the tracker is restarting
      }
      await sleep(pollMs);
    }
    return false;
  }

  /** Starts a resync on the host (refused while the backup is away: then nothing happens). */
  async #resync(forMs: number): Promise<void> {
    try {
      const url = `${this.sys.host.url}/v1/volumes/${this.sys.volume}/resync`;
      const res = await fetch(url, { method: "POST" });
      await res.body?.cancel();
    } catch {
      // the host is restarting
    }
    await sleep(forMs);
  }

  async #waitMode(ok: (mode: string) => boolean): Promise<void> {
    const deadline = Date.now() + noticeMsMax;
    while (Date.now() < deadline) {
      try {
        const status = await (await fetch(`${this.sys.host.url}/v1/status`)).json();
        if (ok(status.mode)) return;
      } catch {
        // the host is restarting
      }
      await sleep(pollMs);
    }
    throw new Error(`The host's mode did not change within ${noticeMsMax} ms`);
  }

  #proxyOf(kind: FaultKind): TcpProxy {
    const proxy = kind.startsWith("link-")
      ? this.sys.linkProxy
      : kind.startsWith("tracker-net-")
      ? this.sys.trackerProxy
      : this.sys.backupProxy;
    if (!proxy) throw new Error(`Fault ${kind} needs its proxy in startSystem's options`);
    return proxy;
  }

  #proxies(): TcpProxy[] {
    return [this.sys.linkProxy, this.sys.trackerProxy, this.sys.backupProxy].filter((p) =>
      p !== undefined
    );
  }

  /** Runs `fn` holding every named lock (taken in name order, so two faults never deadlock). */
  async #withLocks(names: string[], fn: () => Promise<void>): Promise<void> {
    const sorted = [...names].sort();
    const before = sorted.map((n) => this.#locks.get(n) ?? Promise.resolve());
    let done!: () => void;
    const mine = new Promise<void>((r) => done = r);
    for (const n of sorted) this.#locks.set(n, mine);
    try {
      await Promise.all(before);
      await fn();
    } finally {
      done();
    }
  }
}

/** What each fault touches; faults sharing a target take turns. */
function targetsOf(kind: FaultKind): string[] {
  // kv-older needs one write to succeed (marked at the tracker): no primary fault meanwhile.
  if (kind === "kv-older") return ["tracker", "tracker-net", "link", "host", "fault-file"];
  if (kind === "kv-empty") return ["tracker"];
  if (kind.startsWith("second-agent")) return ["tracker", "host"];
  if (/^(journal|primary|secondary)-/.test(kind)) return ["fault-file"];
  if (kind.startsWith("tracker-net-")) return ["tracker-net"];
  if (kind.startsWith("backup-http-")) return ["backup-http"];
  if (kind === "resync-during") return ["resync"];
  if (kind.startsWith("link-")) return ["link"];
  return [kind.split("-")[1]]; // kill-* and stop-*: the process
}

function healProxy(p: TcpProxy): void {
  p.delay(0);
  p.refuse(false);
  p.release();
}

/** The KV file and the SQLite files beside it. */
function kvFiles(kvPath: string): string[] {
  return [kvPath, `${kvPath}-wal`, `${kvPath}-shm`];
}

async function copyIfExists(from: string, to: string): Promise<void> {
  try {
    await Deno.copyFile(from, to);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** `args` with `flag`'s value replaced (or the flag added). */
function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const i = args.indexOf(flag);
  if (i < 0) return [...args, flag, value];
  const out = [...args];
  out[i + 1] = value;
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
