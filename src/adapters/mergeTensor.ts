// The arithmetic of one merged tensor: ΔW of every contributing adapter, combined (linear or TIES), added to the
// base weight in float32, checked, and rounded once to the output dtype.
import { bytesToFloat32, dtypeSize, float32ToBytes, type Dtype } from '../safetensors';
import { checkModule, deltaWeight, mergeWeight, type AdapterModule } from './deltaWeight';
import { MergeError } from './mergeError';
import { floatDtype, RowCodec, type FloatDtype } from './mergeCodec';
import { LoraRows, Mora1Rows, Mora6Rows, type DeltaRows } from './mergeKernels';
import { asMergeError, type MergePlan, type MergeSource, type TensorPlan } from './mergePlan';
import { tiesCombine } from './ties';
import { mergeTiesRows } from './tiesRows';
import { moduleScaling } from './targets';
import { mergeWasm, type MergeWasm } from './mergeWasm';
import { WasmLoraRows, WasmMora6Rows } from './mergeWasmRows';

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** acc += decode(bytes): fast paths for F32 and BF16 avoid a second float32 copy of the base tensor. */
export function addBaseInto(acc: Float32Array, bytes: Uint8Array, dtype: Dtype): void {
  const n = acc.length;
  if (littleEndian && dtype === 'BF16' && bytes.byteOffset % 2 === 0 && bytes.length === 2 * n) {
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
  if (littleEndian && dtype === 'F32' && bytes.byteOffset % 4 === 0 && bytes.length === 4 * n) {
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
  if (dtype === 'BF16' && littleEndian) {
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
  if (dtype === 'F32' && littleEndian) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
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
  if (!littleEndian || plan.dora || !floatDtype(from) || !floatDtype(outDtype) || t.info.shape.length !== 2) return undefined;
  const [outF, inF] = t.info.shape;
  if (baseBytes.length !== outF * inF * dtypeSize(from)) return undefined;
  if (plan.method !== 'ties') return LinearRows.create(plan, t, sources, outDtype, what)?.merge(baseBytes, 0);
  // WASM kernels where SIMD is available: this tensor's scratch comes from the arena, emptied here (the previous
  // tensor's views are no longer used), and every region is allocated before the first row is formed.
  const wasm = mergeWasm();
  wasm?.arena.reset();
  const rows = kernelRows(t, sources, wasm);
  if (!rows) return undefined;
  const weights = t.contributions.map((c) => sources[c.source].weight);
  const codec = new RowCodec(baseBytes, from, outDtype, inF, what, wasm);
  // TIES trims each task tensor to its global top-k magnitudes: tiesRows.ts keeps them (sparse ones compactly).
  mergeTiesRows(rows, weights, plan.density, codec);
  return codec.out;
}

/**
 * Whether mergeTensorBytes takes LinearRows for t, known before its bytes are read: a linear, non-DoRA merge of a
 * float 2-D tensor of the expected size whose every contribution has row kernels.
 */
export function linearRowsApply(plan: MergePlan, t: TensorPlan, sources: MergeSource[]): boolean {
  const { dtype, shape, dataOffsets } = t.info;
  return littleEndian && !plan.dora && plan.method !== 'ties' && !t.replacement && t.contributions.length > 0 &&
    floatDtype(dtype) && floatDtype(t.outDtype) && shape.length === 2 &&
    dataOffsets[1] - dataOffsets[0] === shape[0] * shape[1] * dtypeSize(dtype) &&
    t.contributions.every((c) => rowConfigOk(sources[c.source].adapter.config));
}

/**
 * A linear merge through the row kernels, a range of rows at a time. Rows are independent, so merging rows
 * [o0, o1) in order gives exactly those rows of the whole-tensor result and, at the first bad row, the same error
 * (codecs name whole-tensor flat indices). The ΔW row state lives from create() to the last merge(); the WASM
 * arena is emptied by create() and must not be reset by anyone else until then.
 */
export class LinearRows {
  private readonly acc: Float32Array;
  private readonly sparse: boolean; // a single MoRA-6 ΔW, zero outside one r̂-wide band per row
  private readonly plusZero: boolean; // the sign of 0·w0, the value of ΔW's zeros after weighting

  private constructor(
    private readonly rows: DeltaRows[],
    private readonly weights: number[],
    private readonly t: TensorPlan,
    private readonly outDtype: FloatDtype,
    private readonly what: string,
    private readonly wasm: MergeWasm | undefined,
  ) {
    this.acc = new Float32Array(t.info.shape[1]);
    this.sparse = rows.length === 1 && rows[0].touched !== undefined && t.info.dtype === outDtype && outDtype !== 'F64';
    this.plusZero = Object.is(0 * weights[0], 0);
  }

  static create(plan: MergePlan, t: TensorPlan, sources: MergeSource[], outDtype: Dtype, what: string): LinearRows | undefined {
    const ok = littleEndian && !plan.dora && plan.method !== 'ties' && floatDtype(t.info.dtype) && t.info.shape.length === 2;
    if (!ok || !floatDtype(outDtype)) return undefined;
    const wasm = mergeWasm();
    wasm?.arena.reset(); // the previous tensor's views are no longer used
    const rows = kernelRows(t, sources, wasm);
    if (!rows) return undefined;
    return new LinearRows(rows, t.contributions.map((c) => sources[c.source].weight), t, outDtype, what, wasm);
  }

  /** Merges the whole rows held in `bytes`, the first of them row o0, in row order; in place for a kept dtype. */
  merge(bytes: Uint8Array, o0: number): Uint8Array {
    const { rows, weights, acc, sparse, plusZero } = this;
    const [inF, from] = [this.t.info.shape[1], this.t.info.dtype as FloatDtype];
    // Each range's codec takes its scratch from the arena after the ΔW rows', whose views are re-made per row.
    const codec = new RowCodec(bytes, from, this.outDtype, inF, this.what, this.wasm, o0 * inF);
    const [w0, n] = [weights[0], bytes.length / dtypeSize(from) / inF];
    if (sparse) codec.scanForPass();
    for (let i = 0; i < n; i++) {
      const o = o0 + i;
      const row0 = rows[0].row(o);
      const at = i * inF;
      if (sparse) {
        const [s, e, wrapEnd] = rows[0].touched!(o);
        if (e - s + wrapEnd < inF) {
          let a = row0;
          if (w0 !== 1) {
            a = acc;
            for (let j = 0; j < wrapEnd; j++) acc[j] = row0[j] * w0;
            for (let j = s; j < e; j++) acc[j] = row0[j] * w0;
          }
          if (wrapEnd > 0) codec.finish(a, 0, at, wrapEnd);
          codec.pass(at + wrapEnd, s - wrapEnd, plusZero);
          codec.finish(a, s, at + s, e - s);
          codec.pass(at + e, inF - e, plusZero);
          continue;
        }
      }
      let a = row0;
      if (rows.length > 1 || w0 !== 1) {
        // Linear: acc = w0·ΔW0 + Σ w·ΔW, rounded to float32 after each step as the whole-tensor loops do.
        a = acc;
        if (w0 !== 1) for (let j = 0; j < inF; j++) acc[j] = row0[j] * w0;
        else acc.set(row0);
        for (let k = 1; k < rows.length; k++) {
          const d = rows[k].row(o);
          const w = weights[k];
          for (let j = 0; j < inF; j++) acc[j] += w * d[j];
        }
      }
      codec.finish(a, 0, at, inF);
    }
    return codec.out;
  }
}

/** Row kernels of every contribution (allocating in the arena, in order), or undefined where one has none. */
function kernelRows(t: TensorPlan, sources: MergeSource[], wasm?: MergeWasm): DeltaRows[] | undefined {
  const rows: DeltaRows[] = [];
  for (const c of t.contributions) {
    const r = deltaRows(sources[c.source], c.module, t, wasm);
    if (!r) return undefined; // later contributions are not checked here: mergeTensorF32 reports their errors
    rows.push(r);
  }
  return rows;
}

const rowConfigOk = (cfg: MergeSource['adapter']['config']) =>
  !cfg.fan_in_fan_out && !cfg.use_dora && (!cfg.use_mora || cfg.mora_type === 1 || cfg.mora_type === 6);

/** Row kernels for one module, validated as deltaWeight validates it; undefined where only deltaWeight applies. */
function deltaRows(s: MergeSource, m: AdapterModule, t: TensorPlan, wasm?: MergeWasm): DeltaRows | undefined {
  const cfg = s.adapter.config;
  if (!rowConfigOk(cfg)) return undefined;
  const [outF, inF] = t.info.shape;
  let rank: number;
  try {
    rank = checkModule(cfg, m, t.info.shape);
  } catch (err) {
    throw asMergeError(err, `${s.adapter.dir}: ${t.name}`);
  }
  if (!cfg.use_mora) {
    const scaling = moduleScaling(cfg, m.path);
    return (wasm && WasmLoraRows.create(wasm, m.A, m.B, rank, inF, outF, scaling)) || new LoraRows(m.A, m.B, rank, inF, outF, scaling);
  }
  if (cfg.mora_type === 1) return new Mora1Rows(m.A, rank, inF, outF);
  return (wasm && WasmMora6Rows.create(wasm, m.A, rank, inF, outF)) || new Mora6Rows(m.A, rank, inF, outF);
}

/**
 * A dtype change of an untouched tensor (or of a piece of one starting at flat index `first`): decode and round in
 * blocks, through the WASM kernels where available, in place when the element size is kept.
 */
export function convertBytes(raw: Uint8Array, from: Dtype, to: Dtype, what: string, first = 0): Uint8Array | undefined {
  if (!littleEndian || !floatDtype(from) || !floatDtype(to)) return undefined;
  const n = raw.length / dtypeSize(from);
  if (!Number.isInteger(n)) return undefined;
  // 16K-value blocks: with WASM, a block's input and output copies stay in L2 around the kernel.
  const block = 1 << 14;
  const wasm = mergeWasm();
  wasm?.arena.reset(); // the previous tensor's arena views are no longer used
  const codec = new RowCodec(raw, from, to, Math.min(n, block), what, wasm, first);
  for (let s = 0; s < n; s += block) codec.finish(undefined, 0, s, Math.min(block, n - s));
  return codec.out;
}
