// The arithmetic of one merged tensor: ΔW of every contributing adapter, combined (linear or TIES), added to the
// base weight in float32, checked, and rounded once to the output dtype.
import { bytesToFloat32, dtypeSize, float32ToBytes, LITTLE_ENDIAN, type Dtype } from '../safetensors';
import { deltaWeight, mergeWeight } from './deltaWeight';
import { MergeError } from './mergeError';
import { floatDtype, RowCodec } from './mergeCodec';
import { asMergeError, type MergePlan, type MergeSource, type TensorPlan } from './mergePlan';
import { kernelRows, LinearRows, resetMergeArena } from './mergeRows';
import { tiesCombine } from './ties';
import { mergeTiesRows } from './tiesRows';
import { mergeWasm } from './mergeWasm';

/** acc += decode(bytes): fast paths for F32 and BF16 avoid a second float32 copy of the base tensor. */
export function addBaseInto(acc: Float32Array, bytes: Uint8Array, dtype: Dtype): void {
  const n = acc.length;
  if (LITTLE_ENDIAN && dtype === 'BF16' && bytes.byteOffset % 2 === 0 && bytes.length === 2 * n) {
    // bf16 is the high half of a float32: shift the 16 bits up and reinterpret, a block at a time.
    const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    const block = new Float32Array(Math.min(n, 65536));
    const blockBits = new Uint32Array(block.buffer);
    for (let s = 0; s < n; s += block.length) {
      const e = Math.min(n, s + block.length);
      for (let i = s; i < e; i++) blockBits[i - s] = u16[i] << 16;
      for (let i = s; i < e; i++) acc[i] += block[i - s];
    }
    return;
  }
  if (LITTLE_ENDIAN && dtype === 'F32' && bytes.byteOffset % 4 === 0 && bytes.length === 4 * n) {
    const w = new Float32Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) acc[i] += w[i];
    return;
  }
  const w = bytesToFloat32(bytes, dtype);
  if (w.length !== n) throw new MergeError('ShapeMismatch', `base tensor has ${w.length} values, ΔW has ${n}`);
  for (let i = 0; i < n; i++) acc[i] += w[i];
}

// Largest magnitudes that still round to a finite value under round-to-nearest-even: half of the last ulp above max.
const f16Limit = 65520; // f16 max 65504 + 16
const bf16Limit = 3.3961775292304957e38; // bf16 max 0x7f7f + half an ulp (float32 bits 0x7f7f8000)

/** Throws NonFiniteResult when `x` holds NaN/±Inf or a value that overflows `dtype` when rounded. */
export function checkFinite(x: Float32Array, dtype: Dtype, what: string): void {
  const limit = dtype === 'F16' ? f16Limit : dtype === 'BF16' ? bf16Limit : Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v !== v || v === Infinity || v === -Infinity) {
      throw new MergeError('NonFiniteResult', `${what} has a non-finite value (${v}) at flat index ${i}`);
    }
    if (v >= limit || v <= -limit) {
      throw new MergeError('NonFiniteResult', `${what} value ${v} at flat index ${i} overflows ${dtype}`);
    }
  }
}

/**
 * Rounds float32 values once to the output dtype, refusing NaN/Inf and values that overflow it. BF16 (the common
 * case) is fused into one pass over the bits: round-to-nearest-even of the upper half, as float32ToBytes does.
 * The result may share memory with `x` (F32), which the caller must not reuse.
 */
export function encodeChecked(x: Float32Array, dtype: 'F32' | 'F16' | 'BF16' | 'F64', what: string): Uint8Array {
  if (dtype === 'BF16' && LITTLE_ENDIAN) {
    const n = x.length;
    const bits = new Uint32Array(x.buffer, x.byteOffset, n);
    const out = new Uint8Array(2 * n);
    const out16 = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) {
      const b = bits[i];
      const rounded = (b + 0x7fff + ((b >>> 16) & 1)) >>> 0;
      // Exponent all ones before rounding: NaN/Inf; after rounding: a finite value that overflowed to Inf.
      if ((b & 0x7f800000) === 0x7f800000 || (rounded & 0x7f800000) === 0x7f800000) {
        const v = x[i];
        const why = v === v && Math.abs(v) !== Infinity ? `value ${v} overflows BF16` : `non-finite value (${v})`;
        throw new MergeError('NonFiniteResult', `${what} has a ${why} at flat index ${i}`);
      }
      out16[i] = rounded >>> 16;
    }
    return out;
  }
  checkFinite(x, dtype, what);
  if (dtype === 'F32' && LITTLE_ENDIAN) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  return float32ToBytes(x, dtype);
}

/**
 * The merged float32 weight of one planned tensor, before rounding (encodeChecked rounds and checks it).
 * `baseBytes` holds the base tensor's raw bytes; the result is in the base layout. Peak extra memory: one float32 copy per contributing adapter for TIES, two for linear.
 */
export function mergeTensorF32(plan: MergePlan, t: TensorPlan, sources: MergeSource[], baseBytes: Uint8Array): Float32Array {
  const shape = t.info.shape;
  if (plan.dora) {
    // DoRA needs W itself for its row norms; mergeWeight is PEFT's merge_and_unload for it.
    const c = t.contributions[0];
    const W = bytesToFloat32(baseBytes, t.info.dtype);
    const adapter = sources[c.source].adapter;
    let merged: Float32Array;
    try {
      merged = mergeWeight(adapter.config, c.module, W, shape);
    } catch (err) {
      throw asMergeError(err, `${adapter.dir}: ${t.name}`);
    }
    return merged;
  }
  const delta = (i: number): Float32Array => {
    const c = t.contributions[i];
    const s = sources[c.source];
    let d: Float32Array;
    try {
      d = deltaWeight(s.adapter.config, c.module, shape);
    } catch (err) {
      throw asMergeError(err, `${s.adapter.dir}: ${t.name}`);
    }
    // No separate finiteness pass here: NaN/Inf in a ΔW reaches the sum (TIES keeps NaN, whose bits rank highest)
    // and encodeChecked refuses it there.
    return d;
  };
  const weightOf = (i: number) => sources[t.contributions[i].source].weight;
  let acc: Float32Array;
  if (plan.method === 'ties') {
    // Sources that do not touch this tensor contribute an all-zero task vector, which neither votes nor counts.
    const deltas = t.contributions.map((_, i) => delta(i));
    acc = tiesCombine(deltas, t.contributions.map((_, i) => weightOf(i)), plan.density, 'total', deltas[0]);
  } else {
    // Linear: accumulate one ΔW at a time so only two float32 copies are alive.
    acc = delta(0);
    const w0 = weightOf(0);
    if (w0 !== 1) for (let j = 0; j < acc.length; j++) acc[j] *= w0;
    for (let i = 1; i < t.contributions.length; i++) {
      const d = delta(i);
      const w = weightOf(i);
      for (let j = 0; j < acc.length; j++) acc[j] += w * d[j];
    }
  }
  addBaseInto(acc, baseBytes, t.info.dtype);
  return acc;
}

/**
 * The merged tensor's output bytes through the row kernels, or undefined when they do not cover the case (DoRA,
 * fan_in_fan_out layouts, unexpected sizes), where the caller takes mergeTensorF32 + encodeChecked. Results are
 * identical to that path, bit for bit; only memory and speed differ: ΔW is formed a row at a time next to the base
 * row instead of as whole float32 matrices, and a dtype-keeping merge overwrites `baseBytes` in place.
 */
export function mergeTensorBytes(
  plan: MergePlan,
  t: TensorPlan,
  sources: MergeSource[],
  baseBytes: Uint8Array,
  outDtype: Dtype,
  what: string,
): Uint8Array | undefined {
  const from = t.info.dtype;
  if (!LITTLE_ENDIAN || plan.dora || !floatDtype(from) || !floatDtype(outDtype) || t.info.shape.length !== 2) return undefined;
  const [outF, inF] = t.info.shape;
  if (baseBytes.length !== outF * inF * dtypeSize(from)) return undefined;
  if (plan.method !== 'ties') return LinearRows.create(plan, t, sources, outDtype, what)?.merge(baseBytes, 0);
  // WASM kernels where SIMD is available: this tensor's scratch comes from the arena, emptied here (the previous
  // tensor's views are no longer used), and every region is allocated before the first row is formed.
  const wasm = mergeWasm();
  resetMergeArena(wasm);
  const rows = kernelRows(t, sources, wasm);
  if (!rows) return undefined;
  const weights = t.contributions.map((c) => sources[c.source].weight);
  const codec = new RowCodec(baseBytes, from, outDtype, inF, what, wasm);
  // TIES trims each task tensor to its global top-k magnitudes: tiesRows.ts keeps them (sparse ones compactly).
  mergeTiesRows(rows, weights, plan.density, codec);
  return codec.out;
}

/**
 * A dtype change of an untouched tensor (or of a piece of one starting at flat index `first`): decode and round in
 * blocks, through the WASM kernels where available, in place when the element size is kept, else into `out` if given.
 */
export function convertBytes(raw: Uint8Array, from: Dtype, to: Dtype, what: string, first = 0, out?: Uint8Array): Uint8Array | undefined {
  if (!LITTLE_ENDIAN || !floatDtype(from) || !floatDtype(to)) return undefined;
  const n = raw.length / dtypeSize(from);
  if (!Number.isInteger(n)) return undefined;
  // 16K-value blocks: with WASM, a block's input and output copies stay in L2 around the kernel.
  const block = 1 << 14;
  const wasm = mergeWasm();
  resetMergeArena(wasm); // the previous tensor's arena views are no longer used
  const codec = new RowCodec(raw, from, to, Math.min(n, block), what, wasm, first, out);
  for (let s = 0; s < n; s += block) codec.finish(undefined, 0, s, Math.min(block, n - s));
  return codec.out;
}
