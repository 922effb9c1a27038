/**
 * The fault simulation's NBD writer: WRITE (sometimes with FUA), TRIM and WRITE_ZEROES to its
 * part of the volume through the host's NBD port, each outcome recorded in the write model (the
 * host forks TRIM and WRITE_ZEROES like writes; its primary reads zeros after either). A
 * connection the host dropped (killed, restarted) is opened again before the next request.
 */
import type { WriteModel } from "../../harness/write_model.ts";
import { randomBytes } from "../../src/random.ts";
import { RawNbdClient } from "./nbd_raw_client.ts";

const cmdWrite = 1;
const cmdTrim = 4;
const cmdWriteZeroes = 6;
const flagFua = 1;

export interface NbdSliceOptions {
  port: number;
  volume: string;
  model: WriteModel;
  /** Draws the next request's range (inside this writer's part of the volume). */
  pick: (rand: () => number) => { offset: number; length: number };
  requestsMax: number;
  /** A request not answered within this counts as failed (old or new) and the connection is dropped. */
  replyMsMax: number;
  rand: () => number;
  stopped: () => boolean;
}

/** Counts of what the writer did, for the simulation's summary. */
export interface NbdSliceCounts {
  acknowledged: number;
  failed: number;
  connects: number;
}

export async function writeSliceNbd(o: NbdSliceOptions): Promise<NbdSliceCounts> {
  const counts: NbdSliceCounts = { acknowledged: 0, failed: 0, connects: 0 };
  let client: RawNbdClient | undefined;
  try {
    for (let n = 0; n < o.requestsMax && !o.stopped(); n++) {
      const pick = o.rand();
      const type = pick < 0.7 ? cmdWrite : pick < 0.85 ? cmdTrim : cmdWriteZeroes;
      const { offset, length } = o.pick(o.rand);
      const data = type === cmdWrite ? randomBytes(o.rand, length) : new Uint8Array(length);
      const flags = o.rand() < 0.3 ? flagFua : 0;
      const index = o.model.issue();
      let ok = false;
      try {
        if (!client) {
          client = await connect(o.port, o.volume);
          counts.connects++;
        }
        const { reply } = client.request({
          type,
          flags,
          offset,
          length,
          data: type === cmdWrite ? data : undefined,
        });
        ok = (await withinMs(reply, o.replyMsMax)).error === 0;
      } catch {
        closeQuietly(client);
        client = undefined;
      }
      if (ok) {
        o.model.acknowledged(index, offset, data);
        counts.acknowledged++;
      } else {
        o.model.failed(index, offset, data);
        counts.failed++;
        await sleep(50);
      }
      await sleep(Math.floor(o.rand() * 20));
    }
  } finally {
    closeQuietly(client);
    await client?.ended();
  }
  return counts;
}

async function connect(port: number, volume: string): Promise<RawNbdClient> {
  const client = await RawNbdClient.connect({ port });
  try {
    await client.start();
    await client.go(volume);
    return client;
  } catch (err) {
    client.conn.close();
    throw err;
  }
}

function closeQuietly(client: RawNbdClient | undefined): void {
  try {
    client?.conn.close();
  } catch {
    // closed by the host already
  }
}

function withinMs<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`No NBD reply within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
