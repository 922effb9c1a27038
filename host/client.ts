/**
 * A small typed client of the host agent's HTTP API (used by reconstruct and tests). Paths come
 * from the app's path table; JSON answers are parsed with the wire schemas.
 */
import {
  type CycleProgress,
  cycleProgress,
  type HostStatus,
  hostStatus,
  type ResyncProgress,
  resyncProgress,
  type ResyncRequestBody,
  type VerifyProgress,
  verifyProgress,
} from "../src/host_schemas.ts";
import { call, callJson, type HttpClientOptions } from "../src/http_client.ts";
import { hostPaths } from "./app.ts";

export class HostClient {
  constructor(readonly baseUrl: string, private readonly opts: HttpClientOptions = {}) {}

  /**
   * Starts (or joins) a resync of `volume`; with `req`, a checksum one (`{mode: "checksum"}`),
   * possibly resolving a split brain (`discardSecondary`).
   */
  async startResync(volume: string, req?: ResyncRequestBody): Promise<ResyncProgress> {
    const init = req ? { method: "POST", json: req } : { method: "POST" };
    return resyncProgress.parse(
      await callJson(this.baseUrl, hostPaths.resync(volume), init, this.opts),
    );
  }

  async resyncProgress(volume: string): Promise<ResyncProgress> {
    return resyncProgress.parse(
      await callJson(this.baseUrl, hostPaths.resync(volume), {}, this.opts),
    );
  }

  /** Starts (or joins) an online verify of `volume`. */
  async startVerify(volume: string): Promise<VerifyProgress> {
    return verifyProgress.parse(
      await callJson(this.baseUrl, hostPaths.verify(volume), { method: "POST" }, this.opts),
    );
  }

  /** Runs one cycle of the cycle-mode `volume` now (409 while one runs, or in journal mode). */
  async startCycle(volume: string): Promise<CycleProgress> {
    return cycleProgress.parse(
      await callJson(this.baseUrl, hostPaths.cycle(volume), { method: "POST" }, this.opts),
    );
  }

  /** The latest cycle of the cycle-mode `volume` and its schedule. */
  async cycleProgress(volume: string): Promise<CycleProgress> {
    return cycleProgress.parse(
      await callJson(this.baseUrl, hostPaths.cycle(volume), {}, this.opts),
    );
  }

  async verifyProgress(volume: string): Promise<VerifyProgress> {
    return verifyProgress.parse(
      await callJson(this.baseUrl, hostPaths.verify(volume), {}, this.opts),
    );
  }

  async write(volume: string, offset: number, data: Uint8Array): Promise<void> {
    const res = await call(
      this.baseUrl,
      `${hostPaths.data(volume)}?offset=${offset}`,
      {
        method: "PUT",
        body: data as Uint8Array<ArrayBuffer>,
        headers: { "content-type": "application/octet-stream" },
      },
      this.opts,
    );
    await res.body?.cancel();
  }

  async read(volume: string, offset: number, length: number): Promise<Uint8Array> {
    const res = await call(
      this.baseUrl,
      `${hostPaths.data(volume)}?offset=${offset}&length=${length}`,
      {},
      this.opts,
    );
    return new Uint8Array(await res.arrayBuffer());
  }

  async status(): Promise<HostStatus> {
    return hostStatus.parse(await callJson(this.baseUrl, hostPaths.status, {}, this.opts));
  }
}
