/**
 * The tracker in-process for tests: `createTrackerApp` over an in-memory (or temp-file) Deno KV
 * with a ManualClock, driven through `app.request()`, optionally over a fault-injecting KV
 * (fault_kv.ts). Helpers assert success so a test reads as what it checks.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import type { LogPage, VolumeInfo } from "../../src/schemas.ts";
import { createTrackerApp, type TrackerService } from "../../tracker/service.ts";
import { type CommitFaults, faultKv } from "./fault_kv.ts";

/** Smallest region, so a few MiB of volume span several segments. */
export const regionBytesTest = 512;

// deno-lint-ignore no-explicit-any
export type Json = any; // response bodies, checked field by field

export interface TrackerHarness extends TrackerService {
  /** The KV itself (unwrapped by faults), for checking what is on disk. */
  kv: Deno.Kv;
  clock: ManualClock;
  req(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }>;
  /** `req` that asserts 200 and returns the body. */
  ok(method: string, path: string, body?: unknown): Promise<Json>;
  register(name: string, sizeBytes: number, extra?: Record<string, unknown>): Promise<VolumeInfo>;
  track(
    volume: string,
    extents: { offset: number; length: number }[],
    time?: number,
  ): Promise<Json>;
  /** Records activity of `host` for single regions; returns the answer. */
  active(volume: string, host: string, regions: number[]): Promise<Json>;
  info(volume: string): Promise<VolumeInfo>;
  /** Every page of the volume's log (`query` e.g. "since=5&limit=2"). */
  logAll(volume: string, query?: string): Promise<LogPage[]>;
  /** Number of "dirty" and "marked" keys in the KV. */
  dirtyKeys(): Promise<number>;
  /** Stops the tracker and closes the KV. */
  close(): Promise<void>;
}

export interface TrackerHarnessOptions {
  /** KV path; in memory when absent. */
  path?: string;
  token?: string;
  /** When set, the tracker's KV commits follow this plan. */
  faults?: CommitFaults;
}

export async function trackerHarness(opts: TrackerHarnessOptions = {}): Promise<TrackerHarness> {
  const kv = await Deno.openKv(opts.path ?? ":memory:");
  const clock = new ManualClock();
  const service = createTrackerApp({
    kv: opts.faults ? faultKv(kv, opts.faults) : kv,
    clock,
    token: opts.token,
  });
  const R = regionBytesTest;
  const h: TrackerHarness = {
    ...service,
    kv,
    clock,
    async req(method, path, body) {
      const init: RequestInit = { method };
      if (body !== undefined) {
        init.body = typeof body === "string" ? body : JSON.stringify(body);
        init.headers = { "content-type": "application/json" };
      }
      const res = await service.app.request(path, init);
      const text = await res.text();
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch { /* metrics are text */ }
      return { status: res.status, json };
    },
    async ok(method, path, body) {
      const res = await h.req(method, path, body);
      assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.json)}`);
      return res.json;
    },
    register(name, sizeBytes, extra = {}) {
      return h.ok("PUT", `/v1/volumes/${name}`, {
        sizeBytes,
        regionBytes: R,
        ownerHost: "h1",
        ownerUrl: "http://127.0.0.1:9001",
        ...extra,
      });
    },
    track(volume, extents, time) {
      return h.ok("POST", "/v1/track", { volume, host: "h1", extents, time });
    },
    active(volume, host, regions) {
      const extents = regions.map((r) => ({ offset: r * R + 7, length: 1 }));
      return h.ok("POST", "/v1/activity", { volume, host, extents });
    },
    info(volume) {
      return h.ok("GET", `/v1/volumes/${volume}`);
    },
    async logAll(volume, query = "") {
      const pages: LogPage[] = [];
      let cursor: string | null = null;
      do {
        const q = [query, cursor ? `cursor=${cursor}` : ""].filter(Boolean).join("&");
        pages.push(await h.ok("GET", `/v1/volumes/${volume}/log${q ? `?${q}` : ""}`));
        cursor = pages.at(-1)!.nextCursor;
        assert.ok(pages.length < 100_000, "log walk does not end");
      } while (cursor);
      return pages;
    },
    async dirtyKeys() {
      let n = 0;
      for await (const _ of kv.list({ prefix: ["dirty"] })) n++;
      for await (const _ of kv.list({ prefix: ["marked"] })) n++;
      return n;
    },
    async close() {
      await service.close();
      kv.close();
    },
  };
  return h;
}
