// The two shard writers of a merge that read tensors through TensorReader: copy + patch (dtypes kept: the kernel
// copies the shard, merged tensors are overwritten in place) and rewrite (a dtype change re-serialises the shard),
// and the per-tensor arithmetic they share with the streamed writer (mergeStream.ts).
import { promises as fs } from 'node:fs';
import { bytesToFloat32, dtypeSize, numel, safetensorsOrder, type Dtype, type ModelWeights } from '../safetensors';
import { MergeError } from './mergeError';
import { TensorReader, writeAt, writeShard, type ShardTensor } from './mergeFiles';
import type { MergePlan, MergeSource, TensorPlan } from './mergePlan';
import { convertBytes, encodeChecked, mergeTensorBytes, mergeTensorF32 } from './mergeTensor';

const floatOut = (d: Dtype): d is 'F32' | 'F16' | 'BF16' | 'F64' => d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F64';

export const isMerged = (t: TensorPlan) => t.contributions.length > 0 || t.replacement !== undefined;

export interface ShardContext {
  plan: MergePlan;
  sources: MergeSource[];
  weights: ModelWeights;
  shard: string;
  target: string;
  tensors: TensorPlan[];
  cancelled: () => void;
  report: (t: TensorPlan) => void;
  holdBytes: number; // merged bytes that may wait in memory for a shard copy to finish
}

/**
 * The output bytes of one tensor: merged, replaced, converted, or the base bytes untouched. The raw buffer goes back
 * to the reader as soon as it is not part of the result; a result that is the raw buffer (in place) is released by
 * the caller once written.
 */
async function outputBytes(ctx: ShardContext, t: TensorPlan, reader: TensorReader): Promise<Uint8Array> {
  const raw = await reader.take(t);
  const out = computeBytes(ctx, t, raw);
  if (out.buffer !== raw.buffer) reader.release(raw);
  return out;
}

export function computeBytes(ctx: ShardContext, t: TensorPlan, raw: Uint8Array): Uint8Array {
  if (!isMerged(t) && t.outDtype === t.info.dtype) return raw;
  if (!floatOut(t.outDtype)) throw new MergeError('UnsupportedDtype', `cannot write ${t.name} as ${t.outDtype}`);
  if (t.replacement) return encodeChecked(Float32Array.from(t.replacement.data), t.outDtype, `saved tensor for ${t.name}`);
  if (t.contributions.length > 0) {
    const what = `merged ${t.name}`;
    // Row kernels where they apply (in place for a kept dtype), else whole-tensor float32 arithmetic.
    return mergeTensorBytes(ctx.plan, t, ctx.sources, raw, t.outDtype, what) ??
      encodeChecked(mergeTensorF32(ctx.plan, t, ctx.sources, raw), t.outDtype, what);
  }
  const what = `converted ${t.name}`;
  return convertBytes(raw, t.info.dtype, t.outDtype, what) ?? convertChunked(raw, t.info.dtype, t.outDtype, what);
}

/**
 * A dtype change of an untouched tensor, in 1M-element pieces so the float32 copy never exists whole. It is
 * still checked: f32 -> f16 can overflow.
 */
function convertChunked(raw: Uint8Array, from: Dtype, to: 'F32' | 'F16' | 'BF16' | 'F64', what: string): Uint8Array {
  const inSize = dtypeSize(from);
  const outSize = dtypeSize(to);
  const n = raw.length / inSize;
  const out = new Uint8Array(n * outSize);
  const chunk = 1 << 20;
  for (let s = 0; s < n; s += chunk) {
    const e = Math.min(n, s + chunk);
    const x = bytesToFloat32(raw.subarray(s * inSize, e * inSize), from);
    out.set(encodeChecked(x, to, what), s * outSize);
  }
  return out;
}

/**
 * Same dtypes: copy the shard file whole (in the kernel, on libuv's thread pool), then overwrite each merged tensor's
 * byte range in place. While the copy runs, the first merged tensors are computed on this thread and held until it
 * ends, up to `ctx.holdBytes` (half the largest tensor), so copying and arithmetic overlap. Afterwards the next
 * tensor's read and the previous tensor's write overlap with each tensor's arithmetic.
 */
export async function copyAndPatchShard(ctx: ShardContext): Promise<void> {
  let copied = false;
  const copy = fs.copyFile(ctx.shard, ctx.target).then(() => {
    copied = true;
  });
  const merged = ctx.tensors.filter(isMerged);
  const reader = new TensorReader(ctx.weights, merged, ctx.holdBytes);
  const dataStart = ctx.weights.file(ctx.shard).header.dataStart;
  const held: [TensorPlan, Uint8Array][] = [];
  let heldBytes = 0;
  let fh: fs.FileHandle | undefined;
  let writing: Promise<void> = Promise.resolve();
  const write = async (t: TensorPlan, bytes: Uint8Array) => {
    const [start, end] = t.info.dataOffsets;
    if (bytes.length !== end - start) {
      throw new MergeError('ShapeMismatch', `${t.name}: merged tensor has ${bytes.length} bytes, the base slot ${end - start}`);
    }
    await writeAt(fh!, bytes, dataStart + start);
    reader.release(bytes);
    ctx.report(t);
  };
  const afterCopy = async () => {
    await copy;
    if (fh) return;
    for (const t of ctx.tensors) if (!isMerged(t)) ctx.report(t);
    fh = await fs.open(ctx.target, 'r+');
    for (const [t, bytes] of held.splice(0)) await write(t, bytes);
  };
  try {
    for (const t of merged) {
      ctx.cancelled();
      const bytes = await outputBytes(ctx, t, reader);
      if (!copied && heldBytes + bytes.length <= ctx.holdBytes) {
        held.push([t, bytes]);
        heldBytes += bytes.length;
        continue;
      }
      await afterCopy();
      // One write in flight: it proceeds on the thread pool while the next tensor is computed.
      await writing;
      writing = write(t, bytes);
    }
    await afterCopy();
    await writing;
  } catch (err) {
    // The copy and any write must finish before the temp folder is removed, or they would recreate the file.
    await copy.catch(() => undefined);
    await writing.catch(() => undefined);
    throw err;
  } finally {
    await fh?.close();
    await reader.close();
  }
}

/** A dtype change: the layout changes, so the shard is re-serialised one tensor at a time. */
export async function rewriteShard(ctx: ShardContext): Promise<void> {
  const tensors: ShardTensor[] = ctx.tensors.map((t) => ({
    name: t.name,
    dtype: t.outDtype,
    shape: t.info.shape,
    bytes: numel(t.info.shape) * dtypeSize(t.outDtype),
    data: async () => {
      ctx.cancelled();
      const bytes = await outputBytes(ctx, t, reader);
      ctx.report(t);
      return bytes;
    },
    written: (bytes) => reader.release(bytes),
    big: Math.max(numel(t.info.shape) * dtypeSize(t.outDtype), t.info.dataOffsets[1] - t.info.dataOffsets[0]) > ctx.holdBytes,
  }));
  // Read ahead in the order the shard is written.
  const byName = new Map(ctx.tensors.map((t) => [t.name, t]));
  const reader = new TensorReader(ctx.weights, safetensorsOrder(tensors).map((w) => byName.get(w.name)!), ctx.holdBytes);
  try {
    await writeShard(ctx.target, tensors, ctx.weights.file(ctx.shard).header.metadata);
  } finally {
    await reader.close();
  }
}
