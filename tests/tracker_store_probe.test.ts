/**
 * The tracker's store probe against etcd endpoints played by small HTTP servers on loopback: one
 * that answers, one that hangs (a member without quorum waits for a leader), one that refuses
 * (a member that is down); and the etcd client's deadline over members that all hang.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../src/clock.ts";
import { EtcdClient } from "../tracker/store/etcd_client.ts";
import { etcdStoreCheck, StoreProbe } from "../tracker/store/store_probe.ts";

/** An endpoint: "answers" 200 to every range, "hangs" until the client gives up. */
function member(kind: "answers" | "hangs") {
  const bodies: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    bodies.push(await req.json());
    if (kind === "hangs") {
      await new Promise((resolve) => req.signal.addEventListener("abort", resolve));
    }
    return Response.json({ header: { revision: "1" } });
  });
  return { endpoint: `127.0.0.1:${server.addr.port}`, bodies, server };
}

/** A loopback port nothing listens on. */
function refusedEndpoint(): string {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return `127.0.0.1:${port}`;
}

Deno.test("etcd probe: ok while one member answers a linearizable read; no quorum when none does, each endpoint named", async () => {
  const good = member("answers");
  const stuck = member("hangs");
  const down = refusedEndpoint();
  try {
    const probeOf = (endpoints: string[]) =>
      new StoreProbe({
        kind: "etcd",
        check: etcdStoreCheck(new EtcdClient(endpoints), "trackmirror/"),
        clock: new ManualClock(),
        timeoutMs: 100,
      });
    const ok = await probeOf([down, stuck.endpoint, good.endpoint]).probeNow();
    assert.equal(ok.ok, true, JSON.stringify(ok));
    assert.deepEqual(ok.endpoints?.map((e) => e.ok), [false, false, true]);
    const asked = good.bodies[0] as { serializable: boolean; key: string };
    assert.equal(asked.serializable, false, "the read is linearizable");
    assert.equal(typeof asked.key, "string");

    const lost = await probeOf([down, stuck.endpoint]).probeNow();
    assert.equal(lost.ok, false);
    assert.equal(lost.kind, "etcd");
    assert.match(lost.error ?? "", /^no quorum: none of 2 member\(s\)/);
    assert.match(lost.error ?? "", new RegExp(`${stuck.endpoint}: no answer within 100 ms`));
    assert.deepEqual(lost.endpoints?.map((e) => e.url), [
      `http://${down}`,
      `http://${stuck.endpoint}`,
    ]);
    assert.ok(lost.endpoints?.every((e) => !e.ok && e.error));
  } finally {
    await Promise.all([good.server.shutdown(), stuck.server.shutdown()]);
  }
});

Deno.test("etcd client: one call gives up at its deadline, not after every hanging member", async () => {
  const members = Array.from({ length: 5 }, () => member("hangs"));
  try {
    // 200 ms a member, 500 ms a call: at most three members are asked, never all five.
    const client = new EtcdClient(members.map((m) => m.endpoint), 200, 500);
    await assert.rejects(
      client.call("/v3/kv/range", { key: "eA==" }),
      (err: Error & { status?: number }) => {
        assert.equal(err.status, 503);
        assert.match(err.message, /deadline of 500 ms reached/);
        return true;
      },
    );
    const asked = members.filter((m) => m.bodies.length > 0).length;
    assert.ok(asked >= 2 && asked < 5, `${asked} members asked`);
    // The next call starts with the first member this one did not get to.
    await assert.rejects(client.call("/v3/kv/range", { key: "eA==" }));
    assert.equal(members[asked].bodies.length, 1, "the next call began where the first stopped");
  } finally {
    await Promise.all(members.map((m) => m.server.shutdown()));
  }
});
