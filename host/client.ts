/** A small typed client of the host agent's HTTP API (used by reconstruct and tests). */
import { call, callJson, type HttpClientOptions } from "../src/http_client.ts";
import type { ResyncProgress } from "./resync/resync.ts";

export class HostClient {
  constructor(readonly baseUrl: string, private readonly opts: HttpClientOptions = {}) {}

  /** Starts (or joins) a resync of `volume`. */
  startResync(volume: string): Promise<ResyncProgress> {
    return callJson(this.baseUrl, `/v1/volumes/${encodeURIComponent(volume)}/resync`, {
      method: "POST",
    }, this.opts);
  }

  resyncProgress(volume: string): Promise<ResyncProgress> {
    return callJson(
      this.baseUrl,
      `/v1/volumes/${encodeURIComponent(volume)}/resync`,
      {},
      this.opts,
    );
  }

  async write(volume: string, offset: number, data: Uint8Array): Promise<void> {
    const res = await call(
      this.baseUrl,
      `/v1/volumes/${encodeURIComponent(volume)}/data?offset=${offset}`,
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
      `/v1/volumes/${encodeURIComponent(volume)}/data?offset=${offset}&length=${length}`,
      {},
      this.opts,
    );
    return new Uint8Array(await res.arrayBuffer());
  }

  // deno-lint-ignore no-explicit-any
  status(): Promise<any> {
    return callJson(this.baseUrl, "/v1/status", {}, this.opts);
  }
}
