import { SafetensorsError } from './errors';
import { dtypeSize, isDtype, type Dtype } from './dtype';
import { findDuplicateKey } from './json';

/** The reference implementation's cap on the header size (N). */
export const MAX_HEADER_SIZE = 100_000_000;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** [start, end) relative to the byte buffer that follows the header. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** In file (offset) order. */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | null;
  /** N: bytes of JSON (including padding) after the 8-byte length prefix. */
  headerLength: number;
  /** 8 + N: where the byte buffer starts. */
  dataStart: number;
  fileSize: number;
}

const fail = (kind: ConstructorParameters<typeof SafetensorsError>[0], msg: string) => new SafetensorsError(kind, msg);

/** Reads N from the 8-byte little-endian prefix and checks it against the file size. */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.length < 8) throw fail('HeaderTooSmall', `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) throw fail('HeaderTooLarge', `header length ${n64} exceeds ${MAX_HEADER_SIZE}`);
  const n = Number(n64);
  if (8 + n > fileSize) throw fail('InvalidHeaderLength', `header length ${n} runs past the end of the ${fileSize}-byte file`);
  return n;
}

// An integer JSON field: non-negative integers only; integers beyond exact double arithmetic are an overflow.
function readUint(v: unknown, what: string, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw fail('TensorInvalidInfo', `tensor '${name}': ${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  if (!Number.isSafeInteger(v)) throw fail('ValidationOverflow', `tensor '${name}': ${what} ${v} exceeds 2^53`);
  return v;
}

function parseTensorInfo(name: string, v: unknown): TensorInfo {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail('TensorInvalidInfo', `tensor '${name}' is not an object`);
  const o = v as Record<string, unknown>;
  if (typeof o.dtype !== 'string') throw fail('TensorInvalidInfo', `tensor '${name}': dtype must be a string`);
  if (!isDtype(o.dtype)) throw fail('UnknownDtype', `tensor '${name}': unknown dtype '${o.dtype}'`);
  if (!Array.isArray(o.shape)) throw fail('TensorInvalidInfo', `tensor '${name}': shape must be an array`);
  const shape = o.shape.map((d, i) => readUint(d, `shape[${i}]`, name));
  const off = o.data_offsets;
  if (!Array.isArray(off) || off.length !== 2) throw fail('TensorInvalidInfo', `tensor '${name}': data_offsets must be [start, end]`);
  const dataOffsets: [number, number] = [readUint(off[0], 'data_offsets[0]', name), readUint(off[1], 'data_offsets[1]', name)];
  return { dtype: o.dtype, shape, dataOffsets };
}

function parseMetadata(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail('InvalidMetadata', '__metadata__ must be an object');
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw fail('InvalidMetadata', `__metadata__.${k} must be a string, got ${JSON.stringify(val)}`);
  }
  // fromEntries defines own properties, so a key like "__proto__" stays data and never touches the prototype.
  return Object.fromEntries(Object.entries(v)) as Record<string, string>;
}

/**
 * Parses and validates the N header bytes (JSON, padding included) of a file of `fileSize` bytes, in the
 * reference implementation's order of checks. Nothing of the data buffer is needed.
 */
export function parseHeaderJson(json: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = json.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    throw fail('InvalidHeader', 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw fail('InvalidHeaderStart', `header must start with '{', got ${JSON.stringify(text.slice(0, 8))}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw fail('InvalidHeaderDeserialization', `header is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw fail('InvalidHeaderDeserialization', 'header is not a JSON object');
  }
  const dup = findDuplicateKey(text);
  if (dup !== null) throw fail('DuplicateKey', `header repeats the key '${dup}'`);

  let metadata: Record<string, string> | null = null;
  const entries: [string, TensorInfo][] = [];
  for (const [name, v] of Object.entries(raw)) {
    // The reference reads __metadata__ as an optional map, so an explicit null means "no metadata".
    if (name === '__metadata__') metadata = v === null ? null : parseMetadata(v);
    else entries.push([name, parseTensorInfo(name, v)]);
  }
  // Files from other writers may list tensors in any order; validation walks them in buffer order.
  entries.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let expected = 0;
  for (const [name, info] of entries) {
    const [s, e] = info.dataOffsets;
    if (s !== expected || e < s) {
      throw fail('InvalidOffset', `tensor '${name}': data_offsets [${s}, ${e}] should start at ${expected} (no holes or overlaps)`);
    }
    expected = e;
    let elements = 1;
    for (const d of info.shape) {
      elements *= d;
      if (!Number.isSafeInteger(elements)) throw fail('ValidationOverflow', `tensor '${name}': element count overflows`);
    }
    const bytes = elements * dtypeSize(info.dtype);
    if (!Number.isSafeInteger(bytes)) throw fail('ValidationOverflow', `tensor '${name}': byte size overflows`);
    if (e - s !== bytes) {
      throw fail('TensorInvalidInfo', `tensor '${name}': ${info.dtype}[${info.shape.join(', ')}] needs ${bytes} bytes, offsets span ${e - s}`);
    }
  }
  if (expected + 8 + headerLength !== fileSize) {
    throw fail('MetadataIncompleteBuffer', `tensors end at byte ${expected + 8 + headerLength} but the file has ${fileSize} bytes`);
  }
  return { tensors: new Map(entries), metadata, headerLength, dataStart: 8 + headerLength, fileSize };
}

/** Validates a whole in-memory file (or at least its first 8 + N bytes when `fileSize` is given). */
export function parseHeaderBytes(bytes: Uint8Array, fileSize = bytes.length): SafetensorsHeader {
  const n = parseHeaderLength(bytes, fileSize);
  if (bytes.length < 8 + n) throw fail('InvalidHeaderLength', `need ${8 + n} bytes of header, got ${bytes.length}`);
  return parseHeaderJson(bytes.subarray(8, 8 + n), fileSize);
}
