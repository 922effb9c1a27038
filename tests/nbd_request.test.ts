/** The boundary check every NBD request passes before a device sees it. */
import assert from "node:assert/strict";
import { checkRequest, drainBytesMax, type RequestLimits } from "../host/nbd/request.ts";
import type { RequestHeader } from "../host/nbd/protocol.ts";

const READ = 0, WRITE = 1, DISC = 2, FLUSH = 3, TRIM = 4, CACHE = 5, ZEROES = 6, STATUS = 7;
const FUA = 1, NO_HOLE = 2, DF = 4, FAST_ZERO = 16;
const EINVAL = 22, ENOSPC = 28, ESHUTDOWN = 108;

const limits: RequestLimits = {
  exportName: "db0",
  sizeBytes: 1 << 20,
  requestBytesMax: 64 * 1024,
  structured: false,
  shuttingDown: false,
};
const req = (type: number, offset: number, length: number, flags = 0): RequestHeader => ({
  type,
  flags,
  offset,
  length,
  cookie: 1n,
});

Deno.test("checkRequest: the verdict for each kind of request", async (t) => {
  const MiB = 1 << 20;
  const cases: [string, RequestHeader, Partial<RequestLimits>, string, number?][] = [
    ["read inside", req(READ, 0, 4096), {}, "execute"],
    ["read ending at the last byte", req(READ, MiB - 1, 1), {}, "execute"],
    ["read one byte past the end", req(READ, MiB - 1, 2), {}, "refuse", EINVAL],
    ["read starting at the end", req(READ, MiB, 1), {}, "refuse", EINVAL],
    ["read at an offset beyond 2^53", req(READ, 2 ** 64, 1), {}, "refuse", EINVAL],
    ["write past the end", req(WRITE, MiB - 1, 2), {}, "refuse", ENOSPC],
    ["write zeroes past the end", req(ZEROES, MiB - 1, 2), {}, "refuse", ENOSPC],
    ["trim past the end", req(TRIM, MiB - 1, 2), {}, "refuse", EINVAL],
    ["read of length 0", req(READ, 0, 0), {}, "refuse", EINVAL],
    ["write of length 0", req(WRITE, 0, 0), {}, "refuse", EINVAL],
    ["trim of length 0", req(TRIM, 0, 0), {}, "refuse", EINVAL],
    ["read of requestBytesMax", req(READ, 0, 64 * 1024), {}, "execute"],
    ["read over requestBytesMax", req(READ, 0, 64 * 1024 + 1), {}, "refuse", EINVAL],
    ["write over requestBytesMax", req(WRITE, 0, 64 * 1024 + 1), {}, "refuse", EINVAL],
    ["write of the largest length a header holds", req(WRITE, 0, drainBytesMax), {}, "refuse", 22],
    ["trim over requestBytesMax (split later)", req(TRIM, 0, MiB), {}, "execute"],
    ["write zeroes over requestBytesMax (split later)", req(ZEROES, 0, MiB), {}, "execute"],
    ["write with FUA", req(WRITE, 0, 1, FUA), {}, "execute"],
    ["write with NO_HOLE", req(WRITE, 0, 1, NO_HOLE), {}, "refuse", EINVAL],
    ["write zeroes with NO_HOLE|FUA", req(ZEROES, 0, 1, NO_HOLE | FUA), {}, "execute"],
    ["write zeroes with FAST_ZERO (not offered)", req(ZEROES, 0, 1, FAST_ZERO), {}, "refuse", 22],
    ["read with DF, no structured replies", req(READ, 0, 1, DF), {}, "refuse", EINVAL],
    ["read with DF, structured replies", req(READ, 0, 1, DF), { structured: true }, "execute"],
    ["read with FUA (valid on every command)", req(READ, 0, 1, FUA), {}, "execute"],
    ["flush", req(FLUSH, 0, 0), {}, "execute"],
    ["flush with an offset", req(FLUSH, 512, 0), {}, "refuse", EINVAL],
    ["disconnect", req(DISC, 0, 0), {}, "disconnect"],
    ["disconnect while shutting down", req(DISC, 0, 0), { shuttingDown: true }, "disconnect"],
    ["cache (not offered)", req(CACHE, 0, 1), {}, "refuse", EINVAL],
    ["block status (no meta context)", req(STATUS, 0, 1), {}, "refuse", EINVAL],
    ["unknown command 99", req(99, 0, 1), {}, "refuse", EINVAL],
    ["read while shutting down", req(READ, 0, 1), { shuttingDown: true }, "refuse", ESHUTDOWN],
  ];
  for (const [what, h, extra, kind, error] of cases) {
    await t.step(what, () => {
      const v = checkRequest(h, { ...limits, ...extra });
      assert.equal(v.kind, kind);
      if (v.kind === "refuse") {
        assert.equal(v.error, error);
        assert.match(v.message, /^(NBD_CMD_|Unknown command)/);
      }
    });
  }
});

Deno.test("checkRequest: refusal messages name the request and the bound", () => {
  const v = checkRequest(req(WRITE, 1048575, 2), limits);
  assert.equal(v.kind, "refuse");
  assert.equal(
    v.kind === "refuse" && v.message,
    'NBD_CMD_WRITE at 1048575+2 on export "db0": range exceeds export size 1048576',
  );
});

Deno.test("checkRequest: a write over a large requestBytesMax is refused, never hung up on", () => {
  const big = { ...limits, sizeBytes: 2 ** 30, requestBytesMax: 64 * 1024 * 1024 };
  assert.equal(checkRequest(req(WRITE, 0, 64 * 1024 * 1024), big).kind, "execute");
  const over = checkRequest(req(WRITE, 0, 64 * 1024 * 1024 + 1), big);
  assert.equal(over.kind, "refuse");
  assert.equal(over.kind === "refuse" && over.error, EINVAL);
});
