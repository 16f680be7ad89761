import { promises as fs } from 'node:fs';
import { tempSibling } from '../util/atomic';
import { SafetensorsError } from './errors';
import { dtypeRank, dtypeSize, isDtype, type Dtype } from './dtype';

export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** The bytes, or a provider called once, lazily, right before this tensor is written. */
  data: Uint8Array | (() => Promise<Uint8Array>);
}

export interface TensorBytes {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

interface Plan<T> {
  /** 8-byte length prefix + padded JSON. */
  header: Uint8Array;
  /** Tensors in buffer order with their byte lengths. */
  order: { t: T; bytes: number }[];
  dataSize: number;
}

/** Validates the request and lays out the file (safetensorsOrder, encodeHeader). */
function plan<T extends { name: string; dtype: Dtype; shape: number[]; data: unknown }>(
  tensors: T[],
  metadata: Record<string, string> = {},
): Plan<T> {
  const seen = new Set<string>();
  const sized = tensors.map((t) => {
    if (t.name === '__metadata__' || seen.has(t.name)) {
      throw new SafetensorsError('InvalidTensorName', `tensor name '${t.name}' is ${seen.has(t.name) ? 'duplicated' : 'reserved'}`);
    }
    seen.add(t.name);
    if (!isDtype(t.dtype)) throw new SafetensorsError('UnknownDtype', `tensor '${t.name}': unknown dtype '${String(t.dtype)}'`);
    let bytes = dtypeSize(t.dtype);
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new SafetensorsError('TensorInvalidInfo', `tensor '${t.name}': bad dimension ${d}`);
      bytes *= d;
      if (!Number.isSafeInteger(bytes)) throw new SafetensorsError('ValidationOverflow', `tensor '${t.name}' is too large`);
    }
    if (t.data instanceof Uint8Array) checkLength(t.name, t.data, bytes);
    return { t, bytes, name: t.name, dtype: t.dtype, shape: t.shape };
  });
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new SafetensorsError('InvalidMetadata', `metadata '${k}' must be a string`);
  }
  const order = safetensorsOrder(sized);
  return { header: encodeHeader(order, metadata), order, dataSize: order.reduce((a, s) => a + s.bytes, 0) };
}

/** The writer's tensor order: dtype alignment rank descending (wider types first keep every tensor aligned), then name. */
export function safetensorsOrder<T extends { name: string; dtype: Dtype }>(tensors: T[]): T[] {
  return [...tensors].sort((a, b) => dtypeRank(b.dtype) - dtypeRank(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The 8-byte length prefix and the JSON header for tensors already in buffer order: `__metadata__` first with format
 * "pt", JSON padded with spaces to a multiple of 8 so the data buffer starts 8-aligned.
 */
export function encodeHeader(
  ordered: { name: string; dtype: Dtype; shape: number[]; bytes: number }[],
  metadata: Record<string, string> | null = {},
): Uint8Array {
  // Built as [key, value] entries so a tensor named like an Object.prototype member stays an ordinary key.
  const { format: _ignored, ...rest } = metadata ?? {};
  const entries: [string, unknown][] = [['__metadata__', Object.fromEntries([['format', 'pt'], ...Object.entries(rest)])]];
  let offset = 0;
  for (const t of ordered) {
    entries.push([t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes] }]);
    offset += t.bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(entries)));
  const n = Math.ceil(json.length / 8) * 8;
  const header = new Uint8Array(8 + n).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(n), true);
  header.set(json, 8);
  return header;
}

function checkLength(name: string, data: Uint8Array, bytes: number): void {
  if (data.length !== bytes) {
    throw new SafetensorsError('InvalidTensorData', `tensor '${name}': got ${data.length} bytes, shape x dtype needs ${bytes}`);
  }
}

/** The whole file in memory; byte-identical to what writeSafetensors puts on disk. */
export function serializeSafetensors(tensors: TensorBytes[], metadata?: Record<string, string>): Uint8Array {
  const p = plan(tensors, metadata);
  const out = new Uint8Array(p.header.length + p.dataSize);
  out.set(p.header, 0);
  let at = p.header.length;
  for (const { t } of p.order) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}

const MAX_WRITE = 1 << 30;

async function writeAll(fh: fs.FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, Math.min(MAX_WRITE, data.length - done));
    done += bytesWritten;
  }
}

/**
 * Streams a .safetensors file: header, then each tensor in buffer order, calling lazy providers one at a time so
 * peak memory is about one tensor. Written to a temp sibling and renamed, so `path` is either the old file or the
 * complete new one; on any error (bad sizes included) the temp file is removed.
 */
export async function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const p = plan(tensors, metadata);
  const tmp = tempSibling(path);
  try {
    const fh = await fs.open(tmp, 'wx');
    try {
      await writeAll(fh, p.header);
      for (const { t, bytes } of p.order) {
        const data = typeof t.data === 'function' ? await t.data() : t.data;
        checkLength(t.name, data, bytes);
        await writeAll(fh, data);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}
