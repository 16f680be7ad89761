// Row-at-a-time ΔW kernels for the merge. A merge only ever needs one row of ΔW next to the matching base row, so
// LoRA and MoRA rows are formed straight into a small scratch row instead of the whole [out, in] matrix, which keeps
// the working set in cache and never allocates a full-size temporary.
//
// Each kernel repeats the arithmetic of loraDeltaW / moraDeltaW operation for operation (same float64 accumulation
// order, same float32 rounding points), so the rows are bit-identical to the rows of those matrices.
import { loraRow } from './lora';
import { moraChunks, moraRopeTables, moraSharingCore } from './mora';

/** Rows of one adapter's ΔW in the nn.Linear orientation [out, in]. */
export interface DeltaRows {
  readonly inF: number;
  readonly outF: number;
  /** Row o of ΔW as float32, in a buffer that stays valid until the next call and must not be written to. */
  row(o: number): Float32Array;
  /**
   * Sparse rows only: the columns of row o that may be non-zero, as [start, end) plus a wrapped-around [0, wrapEnd).
   * Every other entry of the row is exactly +0.
   */
  touched?(o: number): [start: number, end: number, wrapEnd: number];
}

/**
 * LoRA: row o of scaling·B·A ([out, r] x [r, in] -> [out, in]) is Σ_k B[o,k]·A[k,:], summed in float64 in k order as
 * loraDeltaW does. Two output rows are formed together, four ranks per pass over the row, so each A value loaded
 * serves eight multiply-adds. loraDeltaW skips B[o,k] = 0; here such terms add 0·A = ±0 to a sum that is never -0,
 * which changes nothing as long as A is finite, so when A holds NaN/Inf rows take the skipping single-row loop.
 * Missing ranks in the last group of four are 0·(a zero row) for the same reason.
 */
export class LoraRows implements DeltaRows {
  private readonly a: Float64Array; // A [r, in] plus one zero row at index r, widened once
  private readonly finiteA: boolean;
  private readonly acc: Float64Array;
  private readonly acc2: Float64Array;
  private readonly out: Float32Array;
  private readonly out2: Float32Array;
  private pairRow = -1; // the row already in out2
  private readonly offs: Int32Array; // per rank (padded to a multiple of 4): offset of its row of A
  private readonly bs: Float64Array; // B[o, k] of the row pair being formed
  private readonly cs: Float64Array;

  constructor(
    private readonly A: Float32Array,
    private readonly B: Float32Array,
    private readonly r: number,
    readonly inF: number,
    readonly outF: number,
    private readonly scaling: number,
  ) {
    this.a = new Float64Array((r + 1) * inF);
    let finite = true;
    for (let i = 0; i < r * inF; i++) {
      const v = A[i];
      this.a[i] = v;
      if (v - v !== 0) finite = false;
    }
    this.finiteA = finite;
    this.acc = new Float64Array(inF);
    this.acc2 = new Float64Array(inF);
    this.out = new Float32Array(inF);
    this.out2 = new Float32Array(inF);
    const slots = Math.ceil(r / 4) * 4;
    this.offs = new Int32Array(slots);
    this.bs = new Float64Array(slots);
    this.cs = new Float64Array(slots);
  }

  row(o: number): Float32Array {
    if (!this.finiteA) return this.single(o);
    if (o === this.pairRow) return this.out2;
    const { a, acc, acc2, out, out2, inF, r, B, scaling } = this;
    const p = o + 1 < this.outF ? o + 1 : o; // the partner row (itself for a last odd row)
    this.pairRow = p === o ? -1 : p;
    const groups = Math.ceil(r / 4);
    const { offs, bs, cs } = this;
    for (let j = 0; j < groups * 4; j++) {
      offs[j] = j < r ? j * inF : r * inF;
      bs[j] = j < r ? B[o * r + j] : 0;
      cs[j] = j < r ? B[p * r + j] : 0;
    }
    for (let g = 0; g < groups; g++) {
      const k = 4 * g;
      const o0 = offs[k], o1 = offs[k + 1], o2 = offs[k + 2], o3 = offs[k + 3];
      const b0 = bs[k], b1 = bs[k + 1], b2 = bs[k + 2], b3 = bs[k + 3];
      const c0 = cs[k], c1 = cs[k + 1], c2 = cs[k + 2], c3 = cs[k + 3];
      const first = g === 0;
      const last = g === groups - 1;
      if (first && !last) {
        for (let i = 0; i < inF; i++) {
          const x0 = a[o0 + i], x1 = a[o1 + i], x2 = a[o2 + i], x3 = a[o3 + i];
          acc[i] = 0 + b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3;
          acc2[i] = 0 + c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3;
        }
      } else if (!last) {
        for (let i = 0; i < inF; i++) {
          const x0 = a[o0 + i], x1 = a[o1 + i], x2 = a[o2 + i], x3 = a[o3 + i];
          acc[i] = acc[i] + b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3;
          acc2[i] = acc2[i] + c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3;
        }
      } else if (!first) {
        for (let i = 0; i < inF; i++) {
          const x0 = a[o0 + i], x1 = a[o1 + i], x2 = a[o2 + i], x3 = a[o3 + i];
          out[i] = (acc[i] + b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3) * scaling;
          out2[i] = (acc2[i] + c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3) * scaling;
        }
      } else {
        for (let i = 0; i < inF; i++) {
          const x0 = a[o0 + i], x1 = a[o1 + i], x2 = a[o2 + i], x3 = a[o3 + i];
          out[i] = (0 + b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3) * scaling;
          out2[i] = (0 + c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3) * scaling;
        }
      }
    }
    return out;
  }

  /** loraDeltaW's own loop for one row, for adapters whose A is not finite. */
  private single(o: number): Float32Array {
    loraRow(this.A, this.B, this.r, this.inF, this.scaling, o, this.acc, this.out);
    return this.out;
  }
}

/**
 * MoRA type 1 (sharing): every row of ΔW is row (o mod r̂) of a core [r̂, in], so the core is built once (float64,
 * as moraDeltaW does) and rows are views of it.
 */
export class Mora1Rows implements DeltaRows {
  private readonly views: Float32Array[] = [];

  constructor(M: Float32Array, private readonly rHat: number, readonly inF: number, readonly outF: number) {
    const rows = Math.min(outF, rHat);
    const core32 = Float32Array.from(moraSharingCore(M, rHat, inF).subarray(0, rows * inF));
    for (let a = 0; a < rows; a++) this.views.push(core32.subarray(a * inF, (a + 1) * inF));
  }

  row(o: number): Float32Array {
    return this.views[o % this.rHat];
  }
}

/**
 * MoRA type 6 (RoPE): ΔW is block-diagonal in padded coordinates, block c = M·R_c, tiled every chunks·r̂ rows.
 * Row o therefore holds only r̂ non-zeros, in columns (c·r̂ + j) mod in of its chunk c; the kernel zeroes the
 * previous row's columns and writes the new ones with moraDeltaW's exact sums.
 */
export class Mora6Rows implements DeltaRows {
  protected readonly cos: Float32Array;
  protected readonly sin: Float32Array;
  private readonly produced: number;
  private out?: Float32Array;
  private lastBase = -1;

  constructor(protected readonly M: Float32Array, protected readonly rHat: number, readonly inF: number, readonly outF: number) {
    const chunks = moraChunks(inF, rHat);
    this.produced = chunks * rHat;
    ({ cos: this.cos, sin: this.sin } = moraRopeTables(rHat, chunks));
  }

  /** The row buffer: zero except for the band of the last row formed. The WASM subclass keeps it in its arena. */
  protected buffer(): Float32Array {
    return (this.out ??= new Float32Array(this.inF));
  }

  /**
   * out[base .. base + r̂) += row `mo / r̂` of M·R_c, for a band that does not wrap around the row (the common case,
   * so no integer division per index). (M·R_c)[a, j] = M[a,j]·cos + M[a,j+h]·sin for j < h, and
   * M[a,j]·cos − M[a,j−h]·sin for j ≥ h.
   */
  protected band(out: Float32Array, mo: number, c: number, base: number, from = 0): void {
    const { M, cos, sin } = this;
    const h = this.rHat / 2;
    for (let j = from; j < h; j++) {
      const co = cos[c * h + j];
      const si = sin[c * h + j];
      out[base + j] += M[mo + j] * co + M[mo + j + h] * si;
      out[base + j + h] += M[mo + j + h] * co - M[mo + j] * si;
    }
  }

  row(o: number): Float32Array {
    const { M, rHat, inF, cos, sin } = this;
    const out = this.buffer();
    const h = rHat / 2;
    const last = this.lastBase;
    if (last >= 0 && last + rHat <= inF) out.fill(0, last, last + rHat);
    else if (last >= 0) for (let j = 0; j < rHat; j++) out[(last + j) % inF] = 0;
    const p = o % this.produced;
    const c = Math.floor(p / rHat);
    const a = p - c * rHat;
    const base = c * rHat;
    this.lastBase = base;
    const mo = a * rHat;
    if (base + rHat <= inF) {
      this.band(out, mo, c, base);
      return out;
    }
    for (let j = 0; j < h; j++) {
      const co = cos[c * h + j];
      const si = sin[c * h + j];
      out[(base + j) % inF] += M[mo + j] * co + M[mo + j + h] * si;
      out[(base + j + h) % inF] += M[mo + j + h] * co - M[mo + j] * si;
    }
    return out;
  }

  /** What a kernel needs to form any row: M [r̂, r̂], the RoPE tables [chunks, r̂/2] and the produced width. */
  tables(): { M: Float32Array; cos: Float32Array; sin: Float32Array; rHat: number; produced: number } {
    return { M: this.M, cos: this.cos, sin: this.sin, rHat: this.rHat, produced: this.produced };
  }

  touched(o: number): [number, number, number] {
    const base = Math.floor((o % this.produced) / this.rHat) * this.rHat;
    const end = base + this.rHat;
    return [base, Math.min(end, this.inF), Math.max(0, end - this.inF)];
  }
}

/**
 * One row of PEFT's TIES combination (sign method "total") of already-trimmed task tensors, into `out`:
 * s = sign(Σ_t T_t) (≥ 0 counts as +), out = Σ_t w_t T_t [sign(T_t) = s] / max(1, #agreeing). Same float64 sums in
 * the same order as tiesCombine, so the float32 results are identical.
 */
export function tiesRow(deltas: Float32Array[], weights: number[], off: number, n: number, out: Float32Array): void {
  const K = deltas.length;
  if (K === 1) {
    // One task: the elected sign is its own, so every non-zero entry agrees and out = 0 + w·T (else +0);
    // v·v > 0 is that test without a branch (false for ±0 and NaN). Non-finite results are redone exactly.
    const d0 = deltas[0];
    const w0 = weights[0];
    for (let i = 0; i < n; i++) {
      const v = d0[off + i];
      let r = 0 + +(v * v > 0) * (w0 * v);
      if (r - r !== 0) r = tiesOne(deltas, weights, off + i);
      out[i] = r;
    }
    return;
  }
  if (K === 2) {
    // Branch-free for random signs: s = ±1 is the elected sign, m_t = [sign(T_t) = s] as 0/1, and a dropped term
    // adds 0·(w·T) = ±0, which leaves the sum unchanged. That only differs from the branchy form when a term is
    // NaN/Inf (0·Inf = NaN), and then the result is not finite, so such elements are recomputed exactly.
    const d0 = deltas[0], d1 = deltas[1];
    const w0 = weights[0], w1 = weights[1];
    for (let i = 0; i < n; i++) {
      const v0 = d0[off + i], v1 = d1[off + i];
      const s = 2 * +(0 + v0 + v1 >= 0) - 1;
      const m0 = +(v0 * s > 0);
      const m1 = +(v1 * s > 0);
      const count = m0 + m1;
      let r = (0 + m0 * (w0 * v0) + m1 * (w1 * v1)) / (count + +(count === 0));
      if (r - r !== 0) r = tiesOne(deltas, weights, off + i);
      out[i] = r;
    }
    return;
  }
  for (let i = 0; i < n; i++) out[i] = tiesOne(deltas, weights, off + i);
}

/** tiesCombine's arithmetic for one element, verbatim. */
function tiesOne(deltas: Float32Array[], weights: number[], j: number): number {
  let vote = 0;
  for (let t = 0; t < deltas.length; t++) vote += deltas[t][j];
  const majority = vote >= 0 ? 1 : -1;
  let sum = 0;
  let count = 0;
  for (let t = 0; t < deltas.length; t++) {
    const v = deltas[t][j];
    if (Math.sign(v) === majority) {
      sum += weights[t] * v;
      count++;
    }
  }
  return sum / Math.max(1, count);
}
