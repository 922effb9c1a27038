import assert from "node:assert/strict";
import {
  AddressInUseError,
  checkPortFree,
  listenNaming,
  naming,
  tcpPortFree,
} from "../src/address_in_use.ts";

Deno.test("a listener refused for an address in use is named with the address and its flag", () => {
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (held.addr as Deno.NetAddr).port;
  try {
    assert.equal(tcpPortFree("127.0.0.1", port), false);
    assert.throws(
      () =>
        listenNaming(
          { address: `127.0.0.1:${port}`, flag: "--port", value: port },
          () => Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, () => new Response()),
        ),
      (err: unknown) => {
        assert.ok(err instanceof AddressInUseError);
        assert.equal(
          err.message,
          `Address 127.0.0.1:${port} is already in use (--port ${port}): another process ` +
            `listens there (a trackmirror already running?); stop it or pass another --port`,
        );
        return true;
      },
    );
    assert.throws(
      () => checkPortFree("127.0.0.1", port, "--link-port"),
      new AddressInUseError(`127.0.0.1:${port}`, "--link-port", port),
    );
  } finally {
    held.close();
  }
  assert.equal(tcpPortFree("127.0.0.1", port), true, "free again once closed");
  checkPortFree("127.0.0.1", port, "--port");
  checkPortFree("127.0.0.1", 0, "--port"); // 0 picks a free port: nothing to check
});

Deno.test("other listen failures pass through unchanged", () => {
  const other = new Deno.errors.PermissionDenied("no");
  assert.equal(naming(other, { address: "x", flag: "--port", value: 1 }), other);
  assert.throws(
    () =>
      listenNaming({ address: "x", flag: "--port", value: 1 }, () => {
        throw other;
      }),
    (err: unknown) => err === other,
  );
});
