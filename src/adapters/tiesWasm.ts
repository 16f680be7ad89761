// WASM kernels of the TIES merge (tiesRows.ts), assembled with src/util/wasm.ts into the merge's arena memory:
//   - tiesHist / tiesHistLo: the two histogram passes of the radix select over |x| bit patterns (scalar i32);
//   - tiesTrim: x = +0 where |x| bits < t, four lanes at a time (i32x4 unsigned compare);
//   - ties1 / ties2 / ties3: tiesRow's combination of 1-3 trimmed rows, two columns per step in f64x2 lanes.
// The combination uses tiesOne's definition directly: vote = 0 + v0 + v1 …, s = + iff vote ≥ 0 (NaN: −),
// agreeing terms (v > 0 for +, v < 0 for −; never ±0 or NaN) summed in float64 from +0 in task order, divided by
// max(1, #agreeing), rounded to float32. A disagreeing term adds +0, which leaves a sum that started at +0 unchanged
// (it is never −0), so this is tiesRow's result bit for bit, non-finite values included, with no fallback.
// MORA_KERNELS=js / setMergeWasm(false) switch these off with the rest of the merge's kernels (mergeWasm()).
import { code, op, type Code } from '../util/wasm';
import type { MergeWasm } from './mergeWasm';

interface TiesKernels {
  tiesHist(p: number, n: number, hist: number): void;
  tiesHistLo(p: number, n: number, hist: number, hi: number): void;
  tiesTrim(p: number, n4: number, t: number): void;
  ties1(p0: number, n2: number, out: number, w0: number): void;
  ties2(p0: number, p1: number, n2: number, out: number, w0: number, w1: number): void;
  ties3(p0: number, p1: number, p2: number, n2: number, out: number, w0: number, w1: number, w2: number): void;
}

/** Largest task count with a kernel; more tasks take tiesRow's JS loop. */
export const maxWasmTasks = 3;

// tiesHist(p 0, n 1, hist 2): hist[|bits| >>> 16]++ over u32 [n]. Locals: end 3, at 4.
function hist(): Code {
  const [p, n, h, end, at] = [0, 1, 2, 3, 4];
  return code(
    op.get(p), op.get(n), op.i32Const(2), op.i32Shl, op.i32Add, op.set(end),
    op.block(), op.loop(),
    op.get(p), op.get(end), op.i32GeU, op.brIf(1),
    // (b >>> 14) & 0x1fffc is the byte offset of counter (b & 0x7fffffff) >>> 16.
    op.get(h), op.get(p), op.i32Load(0, 2), op.i32Const(14), op.i32ShrU, op.i32Const(0x1fffc), op.i32And, op.i32Add, op.tee(at),
    op.get(at), op.i32Load(0, 2), op.i32Const(1), op.i32Add, op.i32Store(0, 2),
    op.get(p), op.i32Const(4), op.i32Add, op.set(p),
    op.br(0), op.end, op.end,
  );
}

// tiesHistLo(p 0, n 1, hist 2, hi 3): hist[a & 0xffff]++ for a = |bits| with a >>> 16 = hi. Locals: end 4, a 5, at 6.
function histLo(): Code {
  const [p, n, h, hi, end, a, at] = [0, 1, 2, 3, 4, 5, 6];
  return code(
    op.get(p), op.get(n), op.i32Const(2), op.i32Shl, op.i32Add, op.set(end),
    op.block(), op.loop(),
    op.get(p), op.get(end), op.i32GeU, op.brIf(1),
    op.get(p), op.i32Load(0, 2), op.i32Const(0x7fffffff), op.i32And, op.tee(a), op.i32Const(16), op.i32ShrU, op.get(hi), op.i32Eq,
    op.if(),
    op.get(h), op.get(a), op.i32Const(0xffff), op.i32And, op.i32Const(2), op.i32Shl, op.i32Add, op.tee(at),
    op.get(at), op.i32Load(0, 2), op.i32Const(1), op.i32Add, op.i32Store(0, 2),
    op.end,
    op.get(p), op.i32Const(4), op.i32Add, op.set(p),
    op.br(0), op.end, op.end,
  );
}

// tiesTrim(p 0, n4 1, t 2): b = b & ((b & 0x7fffffff) ≥u t ? ~0 : 0) over u32 [n4], n4 a multiple of 4.
// Locals: end 3 (i32); mask 4, tv 5, b 6 (v128).
function trim(): Code {
  const [p, n, t, end, mask, tv, b] = [0, 1, 2, 3, 4, 5, 6];
  return code(
    op.i32Const(0x7fffffff), op.i32x4Splat, op.set(mask), op.get(t), op.i32x4Splat, op.set(tv),
    op.get(p), op.get(n), op.i32Const(2), op.i32Shl, op.i32Add, op.set(end),
    op.block(), op.loop(),
    op.get(p), op.get(end), op.i32GeU, op.brIf(1),
    op.get(p), op.get(p), op.v128Load(0, 4), op.tee(b), op.get(b), op.get(mask), op.v128And, op.get(tv), op.i32x4GeU, op.v128And, op.v128Store(0, 4),
    op.get(p), op.i32Const(16), op.i32Add, op.set(p),
    op.br(0), op.end, op.end,
  );
}

// tiesK(p_0 … p_{K-1}, n2, out, w_0 … w_{K-1}): out f32 [n2] (n2 even) from the K f32 rows, two columns per step.
// Locals after the params: i, end (i32); zero, one, vote, pos, sum, cnt, then per task w_t, x_t, a_t (v128).
function tiesK(K: number): Code {
  const p = (t: number) => t;
  const [n, out] = [K, K + 1];
  const w = (t: number) => K + 2 + t;
  const [i, end] = [2 * K + 2, 2 * K + 3];
  const [zero, one, vote, pos, sum, cnt] = [0, 1, 2, 3, 4, 5].map((j) => 2 * K + 4 + j);
  const ws = (t: number) => 2 * K + 10 + 3 * t;
  const x = (t: number) => ws(t) + 1;
  const a = (t: number) => ws(t) + 2;
  const tasks = (f: (t: number) => Code) => code(...Array.from({ length: K }, (_, t) => f(t)));
  return code(
    op.f64Const(0), op.f64x2Splat, op.set(zero), op.f64Const(1), op.f64x2Splat, op.set(one),
    tasks((t) => code(op.get(w(t)), op.f64x2Splat, op.set(ws(t)))),
    op.i32Const(0), op.set(i),
    op.get(n), op.i32Const(2), op.i32Shl, op.set(end),
    op.block(), op.loop(),
    op.get(i), op.get(end), op.i32GeU, op.brIf(1),
    tasks((t) => code(op.get(p(t)), op.get(i), op.i32Add, op.v128Load64Zero(0, 2), op.f64x2PromoteLowF32x4, op.set(x(t)))),
    // vote = ((0 + x_0) + x_1) + …; pos = vote ≥ 0, i.e. not < 0 and not NaN.
    op.get(zero), op.set(vote),
    tasks((t) => code(op.get(vote), op.get(x(t)), op.f64x2Add, op.set(vote))),
    op.get(vote), op.get(vote), op.f64x2Eq, op.get(vote), op.get(zero), op.f64x2Lt, op.v128AndNot, op.set(pos),
    // a_t = pos ? 0 < x_t : x_t < 0 (bitselect takes the first operand where the mask is set).
    tasks((t) => code(op.get(zero), op.get(x(t)), op.f64x2Lt, op.get(x(t)), op.get(zero), op.f64x2Lt, op.get(pos), op.v128Bitselect, op.set(a(t)))),
    op.get(zero), op.set(sum), op.get(zero), op.set(cnt),
    tasks((t) => code(
      op.get(sum), op.get(ws(t)), op.get(x(t)), op.f64x2Mul, op.get(a(t)), op.v128And, op.f64x2Add, op.set(sum),
      op.get(cnt), op.get(one), op.get(a(t)), op.v128And, op.f64x2Add, op.set(cnt),
    )),
    op.get(out), op.get(i), op.i32Add,
    op.get(sum), op.get(cnt), op.get(one), op.f64x2Max, op.f64x2Div, op.f32x4DemoteF64x2Zero, op.v128Store64Lane(0, 0, 2),
    op.get(i), op.i32Const(8), op.i32Add, op.set(i),
    op.br(0), op.end, op.end,
  );
}

function kernels(w: MergeWasm): TiesKernels {
  const v = 'v128' as const;
  const i32 = 'i32' as const;
  const combine = (K: number) => ({
    name: `ties${K}`,
    params: [...Array<'i32'>(K + 2).fill(i32), ...Array<'f64'>(K).fill('f64')],
    results: [],
    locals: [i32, i32, ...Array<'v128'>(6 + 3 * K).fill(v)],
    body: tiesK(K),
  });
  return w.module<TiesKernels>('ties', () => [
    { name: 'tiesHist', params: [i32, i32, i32], results: [], locals: [i32, i32], body: hist() },
    { name: 'tiesHistLo', params: [i32, i32, i32, i32], results: [], locals: [i32, i32, i32], body: histLo() },
    { name: 'tiesTrim', params: [i32, i32, i32], results: [], locals: [i32, v, v, v], body: trim() },
    combine(1),
    combine(2),
    combine(3),
  ]);
}

// Chunk of values copied through the arena for the histogram and trim passes: 64 KB stays in L2 around the kernel.
const chunk = 1 << 14;

/**
 * The kernels with this tensor's arena scratch: the histogram, a copy-through chunk, and `tasks` rows of `width`
 * values plus an output row. Allocated when made; views are re-made per call, since an allocation may grow the memory.
 */
export class TiesWasm {
  private readonly k: TiesKernels;
  private readonly pHist: number;
  private readonly pChunk: number;
  private readonly pRows: number;
  private readonly pOut: number;
  private readonly rowBytes: number;

  constructor(private readonly w: MergeWasm, tasks: number, private readonly width: number) {
    this.k = kernels(w);
    const w4 = Math.ceil(width / 4) * 4;
    this.rowBytes = 4 * w4;
    this.pHist = w.arena.alloc(65536 * 4);
    this.pChunk = w.arena.alloc(chunk * 4);
    this.pRows = w.arena.alloc(Math.max(1, tasks) * this.rowBytes);
    this.pOut = w.arena.alloc(this.rowBytes);
    // The arena is reused between tensors, and a sparse task's row is only cleared where its last band was.
    w.f32(this.pRows, (Math.max(1, tasks) * this.rowBytes) / 4).fill(0);
  }

  /** The histogram of |bits| >>> 16 (hi < 0) or of the low halves of those with high half hi, into `hist` (zeroed here). */
  histogram(bits: Uint32Array, hist: Uint32Array, hi: number): void {
    const h = this.w.u32(this.pHist, 65536);
    h.fill(0);
    const view = this.w.u32(this.pChunk, chunk);
    for (let s = 0; s < bits.length; s += chunk) {
      const m = Math.min(chunk, bits.length - s);
      view.set(bits.subarray(s, s + m));
      if (hi < 0) this.k.tiesHist(this.pChunk, m, this.pHist);
      else this.k.tiesHistLo(this.pChunk, m, this.pHist, hi);
    }
    hist.set(h);
  }

  /** bits[from, to) = +0 where the magnitude bits are < t (t up to 2^31), in place. */
  trim(bits: Uint32Array, from: number, to: number, t: number): void {
    const view = this.w.u32(this.pChunk, chunk);
    for (let s = from; s < to; s += chunk) {
      const m = Math.min(chunk, to - s);
      const m4 = Math.ceil(m / 4) * 4;
      view.set(bits.subarray(s, s + m));
      view.fill(0, m, m4);
      this.k.tiesTrim(this.pChunk, m4, t | 0);
      bits.set(view.subarray(0, m), s);
    }
  }

  /** A row of `width` values in the arena for task t: fill it, then call combine(). */
  row(t: number): Float32Array {
    return this.w.f32(this.pRows + t * this.rowBytes, this.width);
  }

  /**
   * tiesRow of the task rows (row(t), t < weights.length ≤ maxWasmTasks) over n ≤ width columns; the result is an
   * arena view valid until the next call (codec.finish reads it in place).
   */
  combine(weights: number[], n: number): Float32Array {
    // An odd n computes one more column from whatever the padding holds; that output is never read.
    const n2 = n + (n & 1);
    const { pRows: p, rowBytes: rb, pOut } = this;
    if (weights.length === 1) this.k.ties1(p, n2, pOut, weights[0]);
    else if (weights.length === 2) this.k.ties2(p, p + rb, n2, pOut, weights[0], weights[1]);
    else this.k.ties3(p, p + rb, p + 2 * rb, n2, pOut, weights[0], weights[1], weights[2]);
    return this.w.f32(pOut, n);
  }

  /** tiesRow of one task over all of `values`, in place, a chunk at a time. */
  map1(values: Float32Array, weight: number): void {
    const cap = this.width;
    const inRow = this.row(0);
    for (let s = 0; s < values.length; s += cap) {
      const m = Math.min(cap, values.length - s);
      inRow.set(values.subarray(s, s + m));
      values.set(this.combine([weight], m), s);
    }
  }
}
