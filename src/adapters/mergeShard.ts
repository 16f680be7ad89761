// The rewrite shard writer of a merge (a dtype change re-serialises the shard, reading tensors through TensorReader),
// and the per-tensor arithmetic it shares with the copy + patch (mergePatch.ts) and streamed (mergeStream.ts) writers.
import { bytesToFloat32, dtypeSize, numel, safetensorsOrder, type Dtype, type ModelWeights } from '../safetensors';
import { floatDtype } from './mergeCodec';
import { MergeError } from './mergeError';
import { TensorReader, writeShard, type ShardTensor } from './mergeFiles';
import type { MergePlan, MergeSource, TensorPlan } from './mergePlan';
import { convertBytes, encodeChecked, mergeTensorBytes, mergeTensorF32 } from './mergeTensor';

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
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

// Untouched tensors that grow (BF16/F16 -> F32) by more than this are converted and written in pieces of this size.
const PIECE_BYTES = 8 << 20;

/**
 * An untouched tensor's converted bytes, PIECE_BYTES at a time: a 131 MB BF16 embedding needs 262 MB as F32, which
 * must not exist whole next to the base bytes (peak memory ≤ 3× the largest tensor). Errors name whole-tensor indices.
 */
async function* convertPieces(ctx: ShardContext, t: TensorPlan, reader: TensorReader): AsyncGenerator<Uint8Array> {
  const from = t.info.dtype;
  const to = t.outDtype as 'F32' | 'F16' | 'BF16' | 'F64';
  const raw = await reader.take(t);
  try {
    const inSize = dtypeSize(from);
    const n = raw.length / inSize;
    const per = Math.max(8, Math.floor(PIECE_BYTES / dtypeSize(to) / 8) * 8);
    const what = `converted ${t.name}`;
    for (let s = 0; s < n; s += per) {
      ctx.cancelled();
      const piece = raw.subarray(s * inSize, Math.min(n, s + per) * inSize);
      yield convertBytes(piece, from, to, what, s)!;
    }
  } finally {
    reader.release(raw);
  }
  ctx.report(t);
}

/** A dtype change: the layout changes, so the shard is re-serialised one tensor at a time. */
export async function rewriteShard(ctx: ShardContext): Promise<void> {
  // Only where convertBytes applies (float input, little-endian host), so the pieces name whole-tensor indices.
  const grows = (t: TensorPlan) =>
    littleEndian && !isMerged(t) && floatDtype(t.info.dtype) && floatOut(t.outDtype) && dtypeSize(t.outDtype) > dtypeSize(t.info.dtype);
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
    pieces: grows(t) && numel(t.info.shape) * dtypeSize(t.outDtype) > PIECE_BYTES ? () => convertPieces(ctx, t, reader) : undefined,
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
