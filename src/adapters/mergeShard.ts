// The rewrite shard writer of a merge (a dtype change re-serialises the shard: merged linear tensors and big
// conversions a slab of rows at a time through SlabReader, the other tensors whole through TensorReader),
// and the per-tensor arithmetic it shares with the copy + patch (mergePatch.ts) and streamed (mergeStream.ts) writers.
import { bytesToFloat32, dtypeSize, numel, safetensorsOrder, LITTLE_ENDIAN, type Dtype, type ModelWeights } from '../safetensors';
import { floatDtype } from './mergeCodec';
import { MergeError } from './mergeError';
import { TensorReader, writeShard, type ShardTensor } from './mergeFiles';
import type { MergePlan, MergeSource, TensorPlan } from './mergePlan';
import { LinearRows, linearRowsApply } from './mergeRows';
import { SlabReader } from './mergeSlabs';
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
export async function outputBytes(ctx: ShardContext, t: TensorPlan, reader: TensorReader): Promise<Uint8Array> {
  const raw = await reader.take(t);
  const out = computeBytes(ctx, t, raw);
  if (out.buffer !== raw.buffer) reader.release(raw);
  return out;
}

/** A dtype-keeping writer overwrites the base tensor's byte range in place, so the merged bytes must fill it exactly. */
export function checkSlot(t: TensorPlan, bytes: Uint8Array): void {
  const slot = t.info.dataOffsets[1] - t.info.dataOffsets[0];
  if (bytes.length !== slot) throw new MergeError('ShapeMismatch', `${t.name}: merged tensor has ${bytes.length} bytes, the base slot ${slot}`);
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

// Base bytes per slab on the rewrite path (mergeSlabs.ts says why 4 MB); undefined: every tensor whole.
let rewriteSlabBytes: number | undefined = 4 << 20;

/** Sets the rewrite path's slab size (undefined: merge whole tensors), for tests; returns the previous setting. */
export function setRewriteSlabBytes(bytes: number | undefined): number | undefined {
  const was = rewriteSlabBytes;
  rewriteSlabBytes = bytes;
  return was;
}

/**
 * A merged or converted tensor's output bytes a slab of rows at a time, read by `slabs` and merged by LinearRows
 * (or converted) into a recycled output buffer, in place when the element size is kept. Whole tensors did not fit
 * the memory target: a MoRA-6 merge to F32 made a fresh 46 MB output per merged tensor and held the 131 MB BF16
 * embedding while the next one was read ahead, 4.1-4.4x the largest tensor in all (bench/RESULTS.md). Rows go in
 * order and errors name whole-tensor flat indices, so the first bad value gives the whole-tensor error.
 */
async function* slabPieces(ctx: ShardContext, t: TensorPlan, slabs: SlabReader, outs: OutPool): AsyncGenerator<Uint8Array> {
  const [from, end] = slabs.range(t);
  const rowValues = numel(t.info.shape) / t.info.shape[0];
  const kept = dtypeSize(t.outDtype) === dtypeSize(t.info.dtype); // done in place, the slab given back by the writer
  const merged = isMerged(t);
  let rows: LinearRows | undefined;
  for (let i = from; i < end; i++) {
    ctx.cancelled();
    const bytes = await slabs.take(i);
    const { o0, length } = slabs.slabs[i];
    const out = kept ? undefined : outs.take(outBytesOf(t, length));
    if (merged) rows ??= LinearRows.create(ctx.plan, t, ctx.sources, t.outDtype, `merged ${t.name}`)!;
    const piece = rows ? rows.merge(bytes, o0, out) : convertBytes(bytes, t.info.dtype, t.outDtype, `converted ${t.name}`, o0 * rowValues, out)!;
    if (!kept) slabs.release(bytes);
    yield piece;
  }
  ctx.report(t);
}

/** Output bytes of `length` base bytes of whole rows of t. */
function outBytesOf(t: TensorPlan, length: number): number {
  const rows = length / ((t.info.dataOffsets[1] - t.info.dataOffsets[0]) / t.info.shape[0]); // integers, exact
  return rows * (numel(t.info.shape) / t.info.shape[0]) * dtypeSize(t.outDtype);
}

/** Recycled output buffers of slabPieces: one being written, one being filled. */
class OutPool {
  private free: ArrayBuffer[] = [];
  constructor(private readonly size: number) {}
  take(n: number): Uint8Array {
    return new Uint8Array(this.free.pop() ?? new ArrayBuffer(this.size), 0, n);
  }
  release(bytes: Uint8Array): void {
    if (this.free.length < 2) this.free.push(bytes.buffer as ArrayBuffer);
  }
}

/** A dtype change: the layout changes, so the shard is re-serialised one tensor at a time. */
export async function rewriteShard(ctx: ShardContext): Promise<void> {
  // Every untouched conversion of more than two slabs (8 MB by default) goes by the slab, where convertBytes applies
  // (float input, little-endian host) and so names whole-tensor indices: a whole 131 MB BF16 -> F16 embedding was held
  // next to the next one, read ahead (2.4x the largest tensor, 1.3x without), and one growing to F32 needed 262 MB.
  const bigConvert = (t: TensorPlan) => LITTLE_ENDIAN && !isMerged(t) && t.outDtype !== t.info.dtype && floatDtype(t.info.dtype) &&
    floatOut(t.outDtype) && t.info.dataOffsets[1] - t.info.dataOffsets[0] === numel(t.info.shape) * dtypeSize(t.info.dtype) &&
    numel(t.info.shape) * Math.max(dtypeSize(t.outDtype), dtypeSize(t.info.dtype)) > 2 * rewriteSlabBytes!;
  // Merged linear tensors and big conversions go by the slab (an empty tensor has no slab to report it by).
  const slabbedSet = new Set(ctx.tensors.filter((t) => rewriteSlabBytes !== undefined && t.info.shape.every((d) => d > 0) &&
    (bigConvert(t) || linearRowsApply(ctx.plan, t, ctx.sources))));
  const slabbed = (t: TensorPlan) => slabbedSet.has(t);
  const inPlace = (t: TensorPlan) => dtypeSize(t.outDtype) === dtypeSize(t.info.dtype); // slabPieces yields slab buffers
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
    pieces: slabbed(t) ? () => slabPieces(ctx, t, slabs, outs) : undefined,
    // Buffers go back to whoever lent them.
    written: slabbed(t) ? (b) => (inPlace(t) ? slabs.release(b) : outs.release(b)) : (b) => reader.release(b),
    big: Math.max(numel(t.info.shape) * dtypeSize(t.outDtype), t.info.dataOffsets[1] - t.info.dataOffsets[0]) > ctx.holdBytes,
  }));
  // Read ahead in the order the shard is written: slabbed tensors by the slab, the others whole.
  const byName = new Map(ctx.tensors.map((t) => [t.name, t]));
  const order = safetensorsOrder(tensors).map((w) => byName.get(w.name)!);
  const slabs = new SlabReader(ctx.weights, order.filter(slabbed), rewriteSlabBytes);
  const outs = new OutPool(slabs.slabs.reduce((a, s) => Math.max(a, outBytesOf(s.t, s.length)), 0));
  const reader = new TensorReader(ctx.weights, order.filter((t) => !slabbed(t)), ctx.holdBytes);
  try {
    await writeShard(ctx.target, tensors, ctx.weights.file(ctx.shard).header.metadata);
  } finally {
    await Promise.all([reader.close(), slabs.close()]);
  }
}
