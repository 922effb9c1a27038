/** The backup service's OpenAPI document, served at `GET /openapi.json`. */

const json = (ref: string) => ({ "application/json": { schema: { $ref: ref } } });
const error = { description: "Error", content: json("#/components/schemas/Error") };

/** OpenAPI 3.1 description of every backup route. */
export const backupOpenApi = {
  openapi: "3.1.0",
  info: { title: "trackmirror backup", version: "1" },
  paths: {
    "/v1/volumes": {
      get: {
        summary: "Registered secondary volumes and their sizes",
        responses: {
          200: { description: "Volumes", content: json("#/components/schemas/VolumeList") },
        },
      },
    },
    "/v1/volumes/{name}": {
      put: {
        summary: "Register a secondary volume (created sparse when absent)",
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        requestBody: { content: json("#/components/schemas/Registration") },
        responses: {
          200: { description: "Registered", content: json("#/components/schemas/Volume") },
          400: error,
          409: {
            ...error,
            description: "Registered with another size, or fenced (an older leaseEpoch)",
          },
        },
      },
    },
    "/v1/volumes/{name}/writes": {
      post: {
        summary: "Journal a batch of records; answered once durable (group commit)",
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        requestBody: {
          content: {
            "application/octet-stream": {
              schema: {
                type: "string",
                format: "binary",
                description: "Journal records back to back",
              },
            },
          },
        },
        responses: {
          200: { description: "Durable", content: json("#/components/schemas/WriteBatchResponse") },
          400: { ...error, description: "Bad framing, checksum, volume name or range" },
          404: { ...error, description: "Unknown volume" },
          413: { ...error, description: "Body over batchBytesMax" },
          503: { ...error, description: "Journal full (backpressure)" },
        },
      },
    },
    "/v1/volumes/{name}/checksums": {
      post: {
        summary: "SHA-256 of each region of a span of the secondary, after applying every record " +
          "taken so far (checksum resync)",
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        requestBody: { content: json("#/components/schemas/ChecksumRequest") },
        responses: {
          200: { description: "Digests", content: json("#/components/schemas/ChecksumResponse") },
          400: {
            ...error,
            description: "Region size not a power of two, span not region-aligned, outside the " +
              "volume, or over 4096 regions / 256 MiB",
          },
          404: { ...error, description: "Unknown volume" },
          503: { ...error, description: "The applier is failing or stopping" },
        },
      },
    },
    "/v1/volumes/{name}/points": {
      get: {
        summary: "The volume's committed points in time (last 32, oldest first) and its open " +
          "resync cycle, if any (issue 10)",
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          200: {
            description: "Points and open cycle",
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  properties: {
                    volume: { type: "string" },
                    points: {
                      type: "array",
                      items: {
                        type: "object",
                        properties: {
                          id: { type: "string" },
                          committedAt: { type: "number" },
                          bytes: { type: "number" },
                          records: { type: "number" },
                          regions: { type: "number" },
                        },
                      },
                    },
                    openCycle: { type: "object", nullable: true },
                  },
                },
              },
            },
          },
          404: { ...error, description: "Unknown volume" },
        },
      },
    },
    "/v1/status": {
      get: {
        summary: "Journal and applier counters",
        responses: { 200: { description: "Status", content: json("#/components/schemas/Status") } },
      },
    },
    "/v1/flush": {
      post: {
        summary: "Wait until every acknowledged record is applied and the secondaries synced",
        responses: { 200: { description: "Flushed" }, 503: error },
      },
    },
  },
  components: {
    schemas: {
      Registration: {
        type: "object",
        required: ["sizeBytes"],
        properties: {
          sizeBytes: { type: "integer", minimum: 1 },
          epoch: {
            type: "integer",
            minimum: 0,
            description: "Link epoch; at most epochAheadMsMax (1 day) ahead of the backup's clock",
          },
          leaseEpoch: {
            type: "integer",
            minimum: 0,
            description: "The tracker's lease epoch; at most leaseEpochStepMax above the current",
          },
          primaryGeneration: { type: "string", format: "uuid" },
          adoptPrimary: { type: "boolean" },
        },
      },
      ChecksumRequest: {
        type: "object",
        required: ["offset", "length", "regionBytes"],
        properties: {
          offset: { type: "integer", minimum: 0, description: "A multiple of regionBytes" },
          length: {
            type: "integer",
            minimum: 1,
            description: "Whole regions, or up to the volume's end",
          },
          regionBytes: { type: "integer", description: "A power of two, 512 B .. 64 MiB" },
        },
      },
      ChecksumResponse: {
        type: "object",
        properties: {
          volume: { type: "string" },
          offset: { type: "integer" },
          length: { type: "integer" },
          regionBytes: { type: "integer" },
          algorithm: { type: "string", enum: ["sha256"] },
          digests: {
            type: "string",
            contentEncoding: "base64",
            description: "Each region's 32-byte SHA-256 digest, back to back, in order",
          },
        },
      },
      Volume: {
        type: "object",
        properties: {
          name: { type: "string" },
          sizeBytes: { type: "integer" },
          generation: { type: "string", format: "uuid" },
          writerGeneration: { type: "string", format: "uuid", nullable: true },
        },
      },
      VolumeList: {
        type: "object",
        properties: { volumes: { type: "array", items: { $ref: "#/components/schemas/Volume" } } },
      },
      WriteBatchResponse: {
        type: "object",
        properties: { records: { type: "integer" }, bytes: { type: "integer" } },
      },
      Status: {
        type: "object",
        properties: {
          state: { type: "string", enum: ["ok", "degraded"] },
          reason: { type: ["string", "null"] },
          applierError: { type: ["string", "null"] },
          journalBytesPending: { type: "integer" },
          journalBytesMax: { type: "integer" },
          recordsAcknowledged: { type: "integer" },
          recordsApplied: { type: "integer" },
          volumes: { type: "array", items: { type: "string" } },
          lag: {
            type: "array",
            description: "Per volume: journaled, not yet applied and synced to the secondary",
            items: {
              type: "object",
              properties: {
                volume: { type: "string" },
                bytes: { type: "integer" },
                records: { type: "integer" },
                oldestAt: { type: ["integer", "null"] },
                oldestAtIso: { type: ["string", "null"] },
                seconds: { type: "number" },
              },
            },
          },
          startedAt: { type: "integer" },
          startedAtIso: { type: "string" },
        },
      },
      Error: {
        type: "object",
        properties: {
          error: {
            type: "object",
            properties: { status: { type: "integer" }, message: { type: "string" }, issues: {} },
          },
        },
      },
    },
  },
} as const;
