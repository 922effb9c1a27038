/**
 * Trackers on an etcd cluster, with real processes (issue 12 item 3): three etcd members on free
 * loopback ports, two trackers on them, a host agent whose backup is offline so every write needs
 * a mark. Under a marking workload one tracker and one etcd member are SIGKILLed: writes go on
 * through the other tracker, and no acknowledged write loses its mark (once the backup returns,
 * reconstruct converges: SHA-256 of primary and secondary equal). With two of three members down
 * (no quorum) a write that needs a new mark fails and the primary is untouched, the tracker's
 * `/v1/status` says its store is not ok (its `/healthz` stays ok) and `deno task status` exits 3
 * naming the store; once quorum returns the store is ok again and the write succeeds.
 *
 * The host is given both trackers (`--tracker A,B`) and fails over between them itself.
 */
import assert from "node:assert/strict";
import { haveEtcd, startEtcdCluster } from "../harness/etcd_cluster.ts";
import { freePort, type ServiceProcess, startService } from "../harness/service_process.ts";
import { runScript, sha256File } from "../harness/tools.ts";
import { HostClient } from "../host/client.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import { type StoreHealth, trackerStatus } from "../src/schemas.ts";
import type { SystemStatus } from "../src/status/status_document.ts";

// etcd is a dependency of the suite (.ci/run installs etcd-server): without it the test fails,
// unless TRACKMIRROR_NO_ETCD=1 says to leave it out.
const ignore = Deno.env.get("TRACKMIRROR_NO_ETCD") === "1";
const seed = Number(Deno.env.get("TRACKMIRROR_SEED") ?? Date.now() % 1_000_000);
const MiB = 1024 * 1024;
const regionBytes = 64 * 1024;
const sizeBytes = 128 * MiB;
/** The quorum check writes in the last region, which the workload never touches. */
const quorumProbeOffset = sizeBytes - regionBytes;

async function waitMirroring(host: HostClient, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await host.status()).mode === "mirroring") return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`The host did not see the backup online within ${timeoutMs} ms`);
}

/** The tracker's store as its `/v1/status` says. */
async function storeOf(url: string): Promise<StoreHealth> {
  const status = trackerStatus.parse(await (await fetch(`${url}/v1/status`)).json());
  assert.ok(status.store, "the tracker reports its store");
  return status.store;
}

/** Waits (bounded) until the tracker's `/v1/status` store satisfies `want`; returns it. */
async function waitStore(
  url: string,
  want: (store: StoreHealth) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<StoreHealth> {
  const deadline = Date.now() + timeoutMs;
  let store = await storeOf(url);
  while (!want(store) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    store = await storeOf(url);
  }
  assert.ok(want(store), `the tracker's store is not ${what}: ${JSON.stringify(store)}`);
  return store;
}

Deno.test({
  name: `two trackers on 3 etcd members: SIGKILL a tracker and a member under writes, then ` +
    `lose and regain quorum; no acknowledged write loses its mark (seed ${seed})`,
  ignore,
  fn: async () => {
    assert.ok(haveEtcd(), "etcd is not installed (apt-get install etcd-server)");
    const rand = seededRandom(seed);
    const dir = await Deno.makeTempDir({ prefix: "trackmirror-etcd-it-" });
    const cluster = await startEtcdCluster(dir, 3);
    const procs: ServiceProcess[] = [];
    try {
      const trackers = [
        await startService("tracker/main.ts", ["--kv", cluster.kvUrl()]),
        await startService("tracker/main.ts", ["--kv", cluster.kvUrl()]),
      ];
      procs.push(...trackers);
      const trackerList = trackers.map((t) => t.url).join(",");
      const backupPort = freePort();
      const backupArgs = ["--data", `${dir}/backup`];
      let backup = await startService("backup/main.ts", backupArgs, { port: backupPort });
      procs.push(backup);
      const primary = `${dir}/primary/vol0.img`;
      const hostProc = await startService("host/main.ts", [
        "--nbd-port",
        String(freePort()),
        "--tracker",
        trackerList,
        "--backup",
        backup.url,
        "--volume",
        `vol0=${primary}:${sizeBytes}`,
        // No marks ahead of a write: each write below needs a mark of its own at a tracker.
        "--predict-regions",
        "0",
      ]);
      procs.push(hostProc);
      const host = new HostClient(hostProc.url, { timeoutMs: 20_000 });
      await waitMirroring(host);
      await backup.kill(); // from here on every write needs a mark at a tracker

      let phase = "before";
      const acked = { before: 0, after: 0 };
      let failed = 0;
      let stop = false;
      // Every write goes to a region not written before, so the host holds no mark for it and
      // must get one from a tracker: a write acknowledged after the kill went through the other.
      const fresh = Array.from({ length: sizeBytes / regionBytes - 1 }, (_, i) => i);
      for (let i = fresh.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [fresh[i], fresh[j]] = [fresh[j], fresh[i]];
      }
      const writer = async (w: number) => {
        const r = seededRandom(seed * 10 + w);
        while (!stop && fresh.length > 0) {
          const within = Math.floor(r() * regionBytes / 2);
          const length = 1 + Math.floor(r() * (regionBytes - within - 1));
          const offset = fresh.pop()! * regionBytes + within;
          try {
            await host.write("vol0", offset, randomBytes(r, length));
            acked[phase as keyof typeof acked]++;
          } catch {
            failed++; // allowed: a failed write leaves the primary untouched
          }
        }
      };
      const writers = Array.from({ length: 4 }, (_, w) => writer(w));
      await new Promise((r) => setTimeout(r, 400 + Math.floor(rand() * 400)));
      await Promise.all([trackers[0].kill(), cluster.members[0].kill()]);
      phase = "after";
      const deadline = Date.now() + 20_000;
      while (acked.after < 30 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      stop = true;
      await Promise.all(writers);
      assert.ok(acked.before > 0, "the workload ran before the kill");
      assert.ok(
        acked.after >= 30,
        `writes went on through the other tracker (${acked.after} acknowledged, ${failed} failed)`,
      );
      assert.equal(
        (await host.status()).components.tracker.current,
        trackers[1].url,
        "the host failed over to the second tracker",
      );

      // One member down, two answering: the tracker's store is ok, the dead member named.
      const running = cluster.members.map((m) => m.running);
      const withQuorum = await waitStore(
        trackers[1].url,
        (store) => store.endpoints?.every((e, i) => e.ok === running[i]) === true,
        "ok on exactly the running members",
      );
      assert.equal(withQuorum.ok, true, JSON.stringify(withQuorum));

      // Two of three members down: no quorum, so no new mark, so no write.
      await cluster.members[1].kill();
      // The tracker says so from its probe, at once, while /healthz stays ok (its contract).
      const lost = await waitStore(trackers[1].url, (store) => !store.ok, "not ok");
      assert.match(lost.error ?? "", /^no quorum: none of 3 member\(s\)/);
      const health = await fetch(`${trackers[1].url}/healthz`);
      await health.body?.cancel();
      assert.equal(health.status, 200);
      // `deno task status` calls the system down (3), naming the store.
      const st = await runScript("host/status/status.ts", ["--tracker", trackers[1].url, "--json"]);
      assert.equal(st.code, 3, `status without quorum:\n${st.stdout}${st.stderr}`);
      const doc = JSON.parse(st.stdout) as SystemStatus;
      assert.equal(doc.health, "down");
      assert.equal(doc.tracker.store?.ok, false);
      assert.ok(
        doc.problems.some((p) => p.includes("its store does not: store: etcd no quorum")),
        doc.problems.join("\n"),
      );
      const before = await sha256File(primary);
      const data = randomBytes(rand, 4096).fill(0xa5, 0, 1);
      await assert.rejects(host.write("vol0", quorumProbeOffset, data));
      const mark = await fetch(`${trackers[1].url}/v1/track`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          volume: "vol0",
          host: "probe",
          extents: [{ offset: quorumProbeOffset, length: 1 }],
        }),
      });
      assert.equal(mark.status, 503, `a mark without quorum: ${await mark.text()}`);
      assert.equal(await sha256File(primary), before, "a write without a mark left the primary");

      // Quorum returns (the killed member restarts on its data): the write goes through.
      cluster.members[0].start();
      await cluster.ready();
      await waitStore(trackers[1].url, (store) => store.ok, "ok again once quorum is back");
      let resumed = false;
      for (let i = 0; i < 60 && !resumed; i++) {
        resumed = await host.write("vol0", quorumProbeOffset, data).then(() => true, () => false);
        if (!resumed) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(resumed, "writes resume once quorum is back");

      // The backup returns; reconstruct copies every marked region; the images must be equal.
      backup = await startService("backup/main.ts", backupArgs, { port: backupPort });
      procs.push(backup);
      await waitMirroring(host);
      const out = await runScript("host/resync/reconstruct.ts", ["--tracker", trackerList]);
      assert.equal(out.code, 0, `reconstruct failed:\n${out.stdout}${out.stderr}`);
      const flushed = await fetch(`${backup.url}/v1/flush`, { method: "POST" });
      await flushed.body?.cancel();
      assert.ok(flushed.ok);
      assert.equal(
        await sha256File(`${dir}/backup/volumes/vol0.img`),
        await sha256File(primary),
        `primary and secondary differ (replay with TRACKMIRROR_SEED=${seed})`,
      );
    } finally {
      for (const p of procs) await p.stop();
      await cluster.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
