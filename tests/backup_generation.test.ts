/**
 * A secondary's generation and writer (issue 9): made with the secondary, kept across restarts,
 * new when the secondary is recreated; the first primary to register is its writer, another one
 * does not replace it unless it adopts.
 */
import assert from "node:assert/strict";
import { openBackup } from "../backup/service.ts";
import { secondaryGenerationPath } from "../backup/secondary_generation.ts";

const volSize = 1024 * 1024;
const primaryA = crypto.randomUUID();
const primaryB = crypto.randomUUID();

async function put(
  b: { app: { request: (path: string, init: RequestInit) => Response | Promise<Response> } },
  name: string,
  body: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await b.app.request(`/v1/volumes/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sizeBytes: volSize, ...body }),
  });
  return { status: res.status, json: await res.json() };
}

Deno.test("a secondary's generation is made with it, kept across restarts, new when recreated", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_gen_" });
  try {
    let generation: unknown;
    {
      const b = await openBackup({ dataDir, log: () => {} });
      const made = await put(b, "db0", {});
      assert.equal(made.status, 201);
      assert.match(String(made.json.generation), /^[0-9a-f-]{36}$/);
      assert.equal(made.json.writerGeneration, null);
      assert.equal(made.json.sizeBytes, volSize);
      generation = made.json.generation;
      assert.equal((await put(b, "db0", {})).json.generation, generation);
      await b.close();
    }
    {
      const b = await openBackup({ dataDir, log: () => {} });
      assert.equal((await put(b, "db0", {})).json.generation, generation);
      await b.close();
    }
    // The backup's data of this volume is lost: a new secondary, a new generation.
    await Deno.remove(`${dataDir}/volumes/db0.img`);
    await Deno.remove(secondaryGenerationPath(`${dataDir}/volumes`, "db0"));
    const b = await openBackup({ dataDir, log: () => {} });
    try {
      const again = await put(b, "db0", {});
      assert.equal(again.status, 201);
      assert.notEqual(again.json.generation, generation);
    } finally {
      await b.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the first primary to register is the writer; another is not, unless it adopts", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_gen_" });
  try {
    const b = await openBackup({ dataDir, log: () => {} });
    try {
      assert.equal(
        (await put(b, "db0", { primaryGeneration: primaryA })).json.writerGeneration,
        primaryA,
      );
      assert.equal(
        (await put(b, "db0", { primaryGeneration: primaryB })).json.writerGeneration,
        primaryA,
      );
      assert.equal((await put(b, "db0", {})).json.writerGeneration, primaryA);
      const adopted = await put(b, "db0", { primaryGeneration: primaryB, adoptPrimary: true });
      assert.equal(adopted.json.writerGeneration, primaryB);
    } finally {
      await b.close();
    }
    const b2 = await openBackup({ dataDir, log: () => {} });
    try {
      assert.equal((await put(b2, "db0", {})).json.writerGeneration, primaryB, "persisted");
    } finally {
      await b2.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("bad generation fields answer 400 naming them and change nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_gen_" });
  try {
    const b = await openBackup({ dataDir, log: () => {} });
    try {
      const cases: [string, Record<string, unknown>, string][] = [
        ["not a uuid", { primaryGeneration: "primary-1" }, "primaryGeneration"],
        ["adopt alone", { adoptPrimary: true }, "adoptPrimary"],
        ["adopt not boolean", { primaryGeneration: primaryA, adoptPrimary: "yes" }, "adoptPrimary"],
      ];
      for (const [what, body, field] of cases) {
        const res = await put(b, "db0", body);
        assert.equal(res.status, 400, what);
        assert.match(JSON.stringify(res.json), new RegExp(field), what);
      }
      const ok = await put(b, "db0", {});
      assert.equal(ok.status, 201, "nothing was created by the refused requests");
      assert.equal(ok.json.writerGeneration, null);
    } finally {
      await b.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("an image without a sidecar gets a generation at open and no writer", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_gen_" });
  try {
    await Deno.mkdir(`${dataDir}/volumes`, { recursive: true });
    await Deno.writeFile(`${dataDir}/volumes/old0.img`, new Uint8Array(volSize));
    const b = await openBackup({ dataDir, log: () => {} });
    try {
      const res = await put(b, "old0", { primaryGeneration: primaryA });
      assert.equal(res.status, 200);
      assert.match(String(res.json.generation), /^[0-9a-f-]{36}$/);
      assert.equal(res.json.writerGeneration, primaryA);
    } finally {
      await b.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
