/**
 * A backup process resumed after SIGSTOP finds that its clients gave up meanwhile: an HTTP batch
 * cut mid-body, a health probe and a link connection closed by a host that timed out. Those are
 * expected conditions: one plain log line each at most, never a stack trace, and the backup goes
 * on serving (its HTTP and link listeners still accept).
 */
import assert from "node:assert/strict";
import { startService } from "../harness/service_process.ts";
import { encodeRecord } from "../src/journal_record.ts";
import { encodeFrame, encodeJsonFrame, FrameReader, FrameType } from "../src/link_protocol.ts";

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Opens a link connection and completes HELLO / WELCOME for `vol0`. */
async function linkHello(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const hello = {
    hostId: "host0",
    ack: "durable",
    volumes: [{ name: "vol0", sizeBytes: 1 << 20, epoch: 1 }],
  };
  await conn.write(encodeJsonFrame(FrameType.hello, hello));
  const welcome = await new FrameReader(conn).next();
  assert.equal(welcome?.type, FrameType.welcome);
  return conn;
}

Deno.test("a backup resumed after SIGSTOP logs clients that gave up in one plain line, no stack trace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backup_resume_" });
  const backup = await startService("backup/main.ts", ["--data", dir]);
  const conns: Deno.Conn[] = [];
  let stopped = false;
  try {
    const link = await (await fetch(`${backup.url}/v1/link`)).json();
    const linkPort = Number(new URL(link.addresses[0].replace("tcp://", "http://")).port);
    const linkConn = await linkHello(linkPort);
    conns.push(linkConn);

    Deno.kill(backup.child.pid, "SIGSTOP");
    stopped = true;
    // While it is stopped: a host sends a batch and half a link frame, probes /healthz, then
    // times out and closes everything.
    const batch = await Deno.connect({ hostname: "127.0.0.1", port: backup.port });
    conns.push(batch);
    await batch.write(encoder.encode(
      "POST /v1/volumes/vol0/writes HTTP/1.1\r\nHost: backup\r\n" +
        "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n" +
        "x".repeat(100),
    ));
    const probe = await Deno.connect({ hostname: "127.0.0.1", port: backup.port });
    conns.push(probe);
    await probe.write(encoder.encode("GET /healthz HTTP/1.1\r\nHost: backup\r\n\r\n"));
    const records = encodeRecord({
      kind: "write",
      volume: "vol0",
      offset: 0,
      length: 4096,
      data: new Uint8Array(4096).fill(1),
    });
    const frame = encodeFrame(FrameType.records, 1, records);
    await linkConn.write(frame.subarray(0, 2000));
    await sleep(100);
    for (const c of conns.splice(0)) c.close();
    Deno.kill(backup.child.pid, "SIGCONT");
    stopped = false;

    await until(
      () => /POST \/v1\/volumes\/vol0\/writes: /.test(backup.output()),
      10_000,
      `the backup to log the cut batch:\n${backup.output()}`,
    );
    // Still serving: HTTP answers and the link accepts a new host.
    const health = await fetch(`${backup.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const again = await linkHello(linkPort);
    again.close();
    await sleep(200);

    const out = backup.output();
    assert.doesNotMatch(out, /^\s+at /m, `stack trace in the backup's output:\n${out}`);
    assert.match(
      out,
      /backup: POST \/v1\/volumes\/vol0\/writes: The client closed the connection before the request was read/,
    );
  } finally {
    if (stopped) Deno.kill(backup.child.pid, "SIGCONT");
    for (const c of conns) c.close();
    await backup.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
