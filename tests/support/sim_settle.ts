/**
 * How the fault simulation knows the system has settled after healing, and what it prints when a
 * round fails: the host registered and promoted, the trust it reports, the backup's flush once
 * its applier recovered, and the services' output.
 */
import type { System } from "../../harness/system.ts";

/**
 * Waits until the host holds its lease again and has promoted its previous run's activity marks.
 * Until then reconstruct sees no dirty mark for what a killed host may have left different, and
 * exits 0 without copying it (a host started while the tracker was unreachable promotes only at
 * its next lease renewal): heal means the host has reconciled with the tracker.
 */
export async function waitRegistered(sys: System, settleMs: number): Promise<void> {
  const deadline = Date.now() + settleMs;
  while (Date.now() < deadline) {
    const status = await (await fetch(`${sys.host.url}/v1/status`)).json();
    const v = status.volumes.find((v: { name: string }) => v.name === sys.volume);
    if (v?.registered && v?.promoted) return;
    await sleep(100);
  }
  throw new Error(`The host did not register and promote "${sys.volume}" within ${settleMs} ms`);
}

/**
 * The volume's trust once settled: after a replaced tracker record the host must say
 * `checksum-resync-needed` within `settleMs` (it notices at its next lease renewal).
 */
export async function settledTrust(
  sys: System,
  recordLost: boolean,
  settleMs: number,
): Promise<string | undefined> {
  if (!recordLost) return await volumeTrust(sys);
  const deadline = Date.now() + settleMs;
  let trust: string | undefined;
  while (Date.now() < deadline) {
    trust = await volumeTrust(sys);
    if (trust === "checksum-resync-needed") return trust;
    await sleep(100);
  }
  throw new Error(
    `The tracker's record was replaced, but after ${settleMs} ms the host's status says trust ` +
      `${JSON.stringify(trust)}, not "checksum-resync-needed"`,
  );
}

/**
 * The backup's flush, retried within `settleMs`: after a healed disk fault its applier may still
 * be waiting out its retry delay, and the flush answers 500 until it has applied again.
 */
export async function flushSettled(sys: System, settleMs: number): Promise<void> {
  const deadline = Date.now() + settleMs;
  for (;;) {
    try {
      return await sys.flushBackup();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

/** `trust` of the volume in the host's status (undefined where the field does not exist yet). */
export async function volumeTrust(sys: System): Promise<string | undefined> {
  const status = await (await fetch(`${sys.host.url}/v1/status`)).json();
  const volume = status.volumes.find((v: { name: string }) => v.name === sys.volume);
  return volume?.trust;
}

/** The services' last output and the host's status, for a failure message. */
export async function outputs(sys: System): Promise<string> {
  const tail = (text: string) => text.slice(-3000);
  const status = await fetch(`${sys.host.url}/v1/status`).then((r) => r.text()).catch((e) => e);
  return `--- tracker ---\n${tail(sys.tracker.output())}\n--- backup ---\n` +
    `${tail(sys.backup.output())}\n--- host ---\n${tail(sys.host.output())}\n` +
    `--- host status ---\n${status}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
