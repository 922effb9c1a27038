/**
 * How tracker keys and values look in etcd, whose keys and values are plain bytes.
 *
 * A key is the namespace's bytes (e.g. "trackmirror/") followed by each part: a string as 0x02,
 * its UTF-8 bytes and a 0x00 terminator (so "a" sorts before "a.b", and the prefix ["dirty", "a"]
 * never covers ["dirty", "ab", …]); a number (a segment index: a non-negative safe integer) as
 * 0x03 and 8 bytes big-endian, so segments list in numeric order. Our key parts are never other
 * types, and strings never hold NUL (names and hosts are validated at the edge).
 *
 * A value is one tag byte and its body: 0x00 raw bytes (bitmaps and mark records, as stored), or
 * 0x01 UTF-8 JSON (numbers and volume records, which Deno KV keeps V8-serialized).
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

const tagString = 0x02;
const tagNumber = 0x03;
const tagBytes = 0x00;
const tagJson = 0x01;

/** The bytes of `key` under `namespace`. */
export function encodeKey(namespace: string, key: Deno.KvKey): Uint8Array {
  const chunks: number[] = [...encoder.encode(namespace)];
  for (const part of key) {
    if (typeof part === "string") {
      if (part.includes("\0")) throw new RangeError(`Key part ${JSON.stringify(part)} holds NUL`);
      chunks.push(tagString, ...encoder.encode(part), 0);
    } else if (typeof part === "number" && Number.isSafeInteger(part) && part >= 0) {
      chunks.push(tagNumber);
      const view = new DataView(new ArrayBuffer(8));
      view.setBigUint64(0, BigInt(part));
      chunks.push(...new Uint8Array(view.buffer));
    } else {
      throw new RangeError(
        `Key part ${String(part)} must be a string or a non-negative safe integer`,
      );
    }
  }
  return new Uint8Array(chunks);
}

/** The key whose bytes are `bytes` under `namespace`; throws on bytes no key encodes to. */
export function decodeKey(namespace: string, bytes: Uint8Array): Deno.KvKey {
  const ns = encoder.encode(namespace);
  if (bytes.length < ns.length || ns.some((b, i) => bytes[i] !== b)) {
    throw new Error(`etcd key ${JSON.stringify(decoder.decode(bytes))} is outside "${namespace}"`);
  }
  const key: Array<string | number> = [];
  let at = ns.length;
  while (at < bytes.length) {
    const tag = bytes[at++];
    if (tag === tagString) {
      const end = bytes.indexOf(0, at);
      if (end < 0) throw new Error(`etcd key has an unterminated string part at byte ${at}`);
      key.push(decoder.decode(bytes.subarray(at, end)));
      at = end + 1;
    } else if (tag === tagNumber && at + 8 <= bytes.length) {
      key.push(Number(new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigUint64(0)));
      at += 8;
    } else {
      throw new Error(`etcd key has an unknown part tag ${tag} at byte ${at - 1}`);
    }
  }
  return key;
}

/** The smallest byte string above every key that starts with `prefix` (etcd's range_end). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]); // etcd: "\0" as range_end means "to the end of the keyspace"
}

/** The stored bytes of a value. */
export function encodeValue(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) {
    const out = new Uint8Array(value.length + 1);
    out[0] = tagBytes;
    out.set(value, 1);
    return out;
  }
  const json = encoder.encode(JSON.stringify(value));
  const out = new Uint8Array(json.length + 1);
  out[0] = tagJson;
  out.set(json, 1);
  return out;
}

/** The value stored as `bytes`. */
export function decodeValue(bytes: Uint8Array): unknown {
  if (bytes[0] === tagBytes) return bytes.slice(1);
  if (bytes[0] === tagJson) return JSON.parse(decoder.decode(bytes.subarray(1)));
  throw new Error(`etcd value has an unknown tag ${bytes[0]}`);
}

/** Base64 of bytes, as etcd's JSON gateway wants keys and values. */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Bytes of base64 text from etcd's JSON gateway. */
export function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
