/**
 * The backup's side of a link handshake for link client tests that script the backup by hand on
 * 127.0.0.1: read the client's HELLO, answer WELCOME for `volumes` (existing ones) with `credit`.
 */
import assert from "node:assert/strict";
import {
  encodeJsonFrame,
  type FrameReader,
  FrameType,
  type LinkWelcome,
  writeAll,
} from "../../src/link_protocol.ts";

export async function welcomeHello(
  conn: Deno.Conn,
  reader: FrameReader,
  volumes: string[],
  credit = 1024 * 1024,
): Promise<void> {
  assert.equal((await reader.next())?.type, FrameType.hello);
  const welcome: LinkWelcome = {
    credit,
    volumes: volumes.map((name) => ({ name, created: false })),
  };
  await writeAll(conn, encodeJsonFrame(FrameType.welcome, welcome));
}
