/** The primary image (the bottom layer): a range outside the image is a programmer error. */
import assert from "node:assert/strict";
import { FileVolume } from "../host/fork/file_volume.ts";

const sizeBytes = 64 * 1024;

Deno.test("FileVolume fails an assertion on a write past the end and leaves the file unchanged", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/vol0.img`;
  const volume = await FileVolume.open(path, sizeBytes);
  try {
    await volume.write(0, new Uint8Array(512).fill(7));
    const before = await Deno.readFile(path);
    await assert.rejects(
      () => volume.write(sizeBytes - 100, new Uint8Array(512).fill(9)),
      assert.AssertionError,
    );
    await assert.rejects(() => volume.write(-1, new Uint8Array(1)), assert.AssertionError);
    assert.throws(() => volume.read(0, 0), assert.AssertionError);
    await assert.rejects(() => volume.writeZeroes(sizeBytes, 1), assert.AssertionError);
    assert.deepEqual(await Deno.readFile(path), before);
    assert.equal((await Deno.stat(path)).size, sizeBytes);
  } finally {
    await volume.close();
    await Deno.remove(dir, { recursive: true });
  }
});
