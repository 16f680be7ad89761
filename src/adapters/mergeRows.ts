// The row kernels of a linear merge: which ΔW row generator serves each contribution (LoRA/rsLoRA rows, MoRA types
// 1 and 6, in WASM where available), and LinearRows, which merges a range of a tensor's rows with them so that a
// tensor can be merged whole (mergeTensor.ts) or a slab at a time (mergePatch.ts) with the same bytes.
import { dtypeSize, LITTLE_ENDIAN, type Dtype } from '../safetensors';
import { checkModule, type AdapterModule } from './deltaWeight';
import { floatDtype, RowCodec, type FloatDtype } from './mergeCodec';
import { LoraRows, Mora1Rows, Mora6Rows, type DeltaRows } from './mergeKernels';
import { asMergeError, type MergePlan, type MergeSource, type TensorPlan } from './mergePlan';
import { moduleScaling } from './targets';
import { mergeWasm, type MergeWasm } from './mergeWasm';
import { WasmLoraRows, WasmMora6Rows } from './mergeWasmRows';
import type { SlabMemory } from './mergeSlabWasm';

// The LinearRows whose ΔW row state is in the merge arena now. A slab-wise merge keeps that state across awaits, and
// another merge in the same process (the extension does not serialise them) may empty the arena in between.
let arenaOwner: LinearRows | undefined;

/** Empties the merge arena for a new tensor's scratch; a LinearRows that had it rebuilds its rows on its next merge(). */
export function resetMergeArena(wasm: MergeWasm | undefined): void {
  wasm?.arena.reset();
  arenaOwner = undefined;
}

/**
 * Whether mergeTensorBytes takes LinearRows for t, known before its bytes are read: a linear, non-DoRA merge of a
 * float 2-D tensor of the expected size whose every contribution has row kernels.
 */
export function linearRowsApply(plan: MergePlan, t: TensorPlan, sources: MergeSource[]): boolean {
  const { dtype, shape, dataOffsets } = t.info;
  return LITTLE_ENDIAN && !plan.dora && plan.method !== 'ties' && !t.replacement && t.contributions.length > 0 &&
    floatDtype(dtype) && floatDtype(t.outDtype) && shape.length === 2 &&
    dataOffsets[1] - dataOffsets[0] === shape[0] * shape[1] * dtypeSize(dtype) &&
    t.contributions.every((c) => rowConfigOk(sources[c.source].adapter.config));
}

/**
 * A linear merge through the row kernels, a range of rows at a time. Rows are independent, so merging rows
 * [o0, o1) in order gives exactly those rows of the whole-tensor result and, at the first bad row, the same error
 * (codecs name whole-tensor flat indices). The ΔW row state lives from create() to the last merge(), in the WASM
 * arena where available; a merge() after someone else emptied it (resetMergeArena) makes the same rows again.
 */
export class LinearRows {
  private readonly acc: Float32Array;
  private readonly sparse: boolean; // a single MoRA-6 ΔW, zero outside one r̂-wide band per row
  private readonly plusZero: boolean; // the sign of 0·w0, the value of ΔW's zeros after weighting

  private constructor(
    private rows: DeltaRows[],
    private readonly sources: MergeSource[],
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
    const ok = LITTLE_ENDIAN && !plan.dora && plan.method !== 'ties' && floatDtype(t.info.dtype) && t.info.shape.length === 2;
    if (!ok || !floatDtype(outDtype)) return undefined;
    const wasm = mergeWasm();
    resetMergeArena(wasm); // the previous tensor's views are no longer used
    const rows = kernelRows(t, sources, wasm);
    if (!rows) return undefined;
    const merge = new LinearRows(rows, sources, t.contributions.map((c) => sources[c.source].weight), t, outDtype, what, wasm);
    arenaOwner = merge;
    return merge;
  }

  /**
   * Merges the whole rows held in `bytes`, the first of them row o0, in row order; in place when the element size is
   * kept, else into `out` (exactly the rows' output bytes) or a fresh buffer. Bytes in a slot of `memory` take the
   * fused MoRA-6 kernel where it applies (same bytes).
   */
  merge(bytes: Uint8Array, o0: number, out?: Uint8Array, memory?: SlabMemory): Uint8Array {
    if (this.wasm && arenaOwner !== this) {
      // The arena was emptied since the last range (another tensor or merge): the same rows, made again.
      resetMergeArena(this.wasm);
      this.rows = kernelRows(this.t, this.sources, this.wasm)!;
      arenaOwner = this;
    }
    const [inF, from] = [this.t.info.shape[1], this.t.info.dtype as FloatDtype];
    const row0 = this.rows[0];
    if (memory && this.sparse && from === 'BF16' && row0 instanceof WasmMora6Rows && memory.fits(row0, bytes)) {
      return this.mergeFused(memory, row0, bytes, o0);
    }
    // Each range's codec takes its scratch from the arena after the ΔW rows', whose views are re-made per row.
    const codec = new RowCodec(bytes, from, this.outDtype, inF, this.what, this.wasm, o0 * inF, out);
    const n = bytes.length / dtypeSize(from) / inF;
    if (this.sparse) codec.scanForPass();
    for (let i = 0; i < n; i++) this.mergeRow(codec, i, o0 + i);
    return codec.out;
  }

  /** BF16 rows in a slab slot, in place: the kernel takes runs of rows, the JS path each row it stops at. */
  private mergeFused(memory: SlabMemory, row0: WasmMora6Rows, bytes: Uint8Array, o0: number): Uint8Array {
    const inF = this.t.info.shape[1];
    const n = bytes.length / 2 / inF;
    let codec: RowCodec | undefined; // made only for such a row; without scanForPass, pass() scans the row in JS
    for (let i = 0; i < n; i++) {
      i += memory.mora6(row0, bytes, i, n - i, o0, this.weights[0]);
      if (i === n) break;
      codec ??= new RowCodec(bytes, 'BF16', 'BF16', inF, this.what, this.wasm, o0 * inF);
      this.mergeRow(codec, i, o0 + i);
    }
    return bytes;
  }

  /** Row i of the codec's bytes, output row o. */
  private mergeRow(codec: RowCodec, i: number, o: number): void {
    const { rows, weights, acc, sparse, plusZero } = this;
    const inF = this.t.info.shape[1];
    const w0 = weights[0];
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
        return;
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
}

/** Row kernels of every contribution (allocating in the arena, in order), or undefined where one has none. */
export function kernelRows(t: TensorPlan, sources: MergeSource[], wasm?: MergeWasm): DeltaRows[] | undefined {
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
