import assert from "node:assert/strict";
import { TcpProxy } from "../harness/tcp_proxy.ts";

/** An echo server on a free loopback port; closes every connection on `stop`. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => conns.delete(conn));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async stop() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) return null;
    got += r;
  }
  return out;
}

Deno.test("the proxy forwards bytes both ways, holds them while held, and cut closes mid-stream", async () => {
  const echo = echoServer();
  const proxy = new TcpProxy({ hostname: "127.0.0.1", port: echo.port });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    await conn.write(new TextEncoder().encode("hello"));
    assert.equal(new TextDecoder().decode((await readExactly(conn, 5))!), "hello");

    proxy.hold();
    await conn.write(new TextEncoder().encode("later"));
    let arrived = false;
    const reply = readExactly(conn, 5).then((b) => {
      arrived = true;
      return b;
    });
    await new Promise((r) => setTimeout(r, 50)); // a window in which held bytes must not arrive
    assert.equal(arrived, false, "nothing crosses a held proxy");
    proxy.release();
    assert.equal(new TextDecoder().decode((await reply)!), "later");

    proxy.cut();
    assert.equal(await readExactly(conn, 1), null, "a cut connection reads end-of-stream");
    assert.equal(proxy.connectionsCut, 1);

    proxy.refuse(true);
    const refused = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    assert.equal(await readExactly(refused, 1), null, "refused connections close at once");
    refused.close();
  } finally {
    try {
      conn.close();
    } catch { /* cut */ }
    await proxy.close();
    await echo.stop();
  }
});
