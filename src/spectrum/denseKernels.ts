// The inner loops of the blocked reductions behind one interface with three implementations: plain JS over
// Float64Array (the reference, and the fallback where WebAssembly SIMD is missing), WASM SIMD (wasmKernels.ts) over
// views of one arena per thread, and the same with fused multiply–adds (relaxed SIMD's relaxed_madd; the default
// where the engine has it). JS and 'wasm' perform the same floating-point operations in the same order, so they
// return bit-identical results (test/unit/spectrumWasm.test.ts); 'wasm-fma' rounds each fused step once, so it
// agrees with them within the dot products' error bound (test/unit/spectrumFma.test.ts), and the kernels, which run
// at the instruction-issue limit, gain 10–40% (the whole model ≈ 15%).
//
// Buffers come from `buffers()`: plain arrays for JS, arena views for wasm. Each call to `buffers()` invalidates the
// views of the previous one (the arena is reset and may grow), so a reduction takes all its buffers in one call.

import { WasmArena, instantiate, wasmSimdSupported } from '../util/wasm';
import { wasmRelaxedSimdSupported } from '../util/wasmRelaxed';
import { rowsAxpy, rowsDotRank1, rowsRank1, scaleTo, wColumn } from './columnKernels';
import { gemmStridedSubtract, gemmSubtract, packStrided } from './gemmKernel';
import { reflectRun } from './householder';
import { symvLower } from './symvKernel';
import { PANEL_WIDTHS, denseKernelModule, type WasmDenseExports } from './wasmKernels';

export type DenseKernelsName = 'js' | 'wasm' | 'wasm-fma';

export interface DenseKernels {
  readonly name: DenseKernelsName;
  /** Fresh buffers (invalidating the previous call's), zeroed but for the last `dirty`, which the caller fills. */
  buffers(lengths: number[], dirty?: number): Float64Array[];
  /** C[c0 + i·ldc + j] −= Σ_p Ā(i, p)·B̄(p, j), operands packed by packStrided (see gemmSubtract). */
  gemmSub(c: Float64Array, c0: number, ldc: number, rows: number, cols: number, k: number, pa: Float64Array, pb: Float64Array, lower?: boolean): void;
  /** acc[c] += Σ_r v[r]·a[r·lda + c] for r in [r0, r1), c in [c0, c1) (rows four at a time). */
  atv(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, v: Float64Array, acc: Float64Array): void;
  /** x[xo + r·xs] = Σ_c a[r·lda + c]·u[c] for r in [r0, r1), summed in two interleaved lanes. */
  av(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, u: Float64Array, x: Float64Array, xo: number, xs: number): void;
  /** Lower-triangle symmetric product over rows [c0, n): acc += A₂₂·v, fused row dot and column axpy. */
  symv(a: Float64Array, lda: number, c0: number, n: number, v: Float64Array, acc: Float64Array): void;
  /**
   * Panel corrections with rows A[ao + r·lda + p] and X[xo + r·ldx + p], p < width (a PANEL_WIDTHS entry, default 8;
   * t1/t2 zero where unused): out[oo + r·os] = (out[oo + r·os] − Σ_p (A·t1[p] + X·t2[p]))·scale for r in [r0, r1),
   * in two interleaved lanes (even and odd p, each in order).
   */
  corr(a: Float64Array, ao: number, lda: number, x: Float64Array, xo: number, ldx: number, r0: number, r1: number, t1: Float64Array, t2: Float64Array, out: Float64Array, oo: number, os: number, scale: number, width?: number): void;
  /** t1[p] += Σ_r A[ao + r·lda + p]·v[r], t2[p] += Σ_r X[xo + r·ldx + p]·v[r] for p < width (as corr), r in [r0, r1) in order. */
  colsT(a: Float64Array, ao: number, lda: number, x: Float64Array, xo: number, ldx: number, r0: number, r1: number, v: Float64Array, t1: Float64Array, t2: Float64Array, width?: number): void;
  /** C −= Ā·B̄ with Ā read in place through strides and B̄ᵀ packed (see gemmStridedSubtract); cols % 4 == 0. */
  gemmStrided(c: Float64Array, c0: number, ldc: number, rows: number, cols: number, k: number, a: Float64Array, a0: number, ablk: number, ars: number, acs: number, pb: Float64Array): void;
  /** packStrided (gemmKernel.ts) from a buffer of these kernels, weights `wp` (also such a buffer) optional. */
  pack(dst: Float64Array, rows: number, k: number, p0: number, p1: number, src: Float64Array, off: number, rs: number, ps: number, wp?: Float64Array): void;
  /** reflectRun(x, off, stride, v, from, to, true) (householder.ts), from < to: the reflector goes back into the run. */
  reflect(x: Float64Array, off: number, stride: number, v: Float64Array, from: number, to: number): { diag: number; tau: number };
  /** wColumn (columnKernels.ts): the tridiagonalisation's W column from acc = A₂₂v − corrections. */
  wColumn(acc: Float64Array, v: Float64Array, c0: number, n: number, tau: number, w: Float64Array, wo: number, ws: number): void;
  /** scaleTo (columnKernels.ts): dst[dOff + c·ds] = f·src[c] for c in [c0, c1). */
  scaleTo(src: Float64Array, c0: number, c1: number, f: number, dst: Float64Array, dOff: number, ds: number): void;
  /** The unblocked bidiagonalisation's row loops (columnKernels.ts), over rows [r0, r1) and columns [c0, c1). */
  rowsAxpy(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, v: Float64Array, w: Float64Array): void;
  rowsRank1(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, beta: number, v: Float64Array, w: Float64Array): void;
  rowsDotRank1(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, beta: number, w: Float64Array): void;
}

/** The panel kernels exist for the widths in PANEL_WIDTHS only (the wasm module has one unrolled pair per width). */
function checkWidth(width: number): void {
  if (!PANEL_WIDTHS.includes(width)) throw new RangeError(`panel kernels: width ${width} is not one of ${PANEL_WIDTHS.join(', ')}`);
}

export const jsKernels: DenseKernels = {
  name: 'js',
  buffers: (lengths) => lengths.map((n) => new Float64Array(n)),
  gemmSub: gemmSubtract,
  gemmStrided: gemmStridedSubtract,
  pack: packStrided,
  reflect: (x, off, stride, v, from, to) => reflectRun(x, off, stride, v, from, to, true),
  wColumn,
  scaleTo,
  rowsAxpy,
  rowsRank1,
  rowsDotRank1,
  atv(a, lda, r0, r1, c0, c1, v, acc) {
    let r = r0;
    for (; r + 3 < r1; r += 4) {
      const v0 = v[r];
      const v1 = v[r + 1];
      const v2 = v[r + 2];
      const v3 = v[r + 3];
      const o0 = r * lda;
      const o1 = o0 + lda;
      const o2 = o1 + lda;
      const o3 = o2 + lda;
      for (let c = c0; c < c1; c++) acc[c] += v0 * a[o0 + c] + v1 * a[o1 + c] + v2 * a[o2 + c] + v3 * a[o3 + c];
    }
    for (; r < r1; r++) {
      const vr = v[r];
      const o = r * lda;
      for (let c = c0; c < c1; c++) acc[c] += vr * a[o + c];
    }
  },
  av(a, lda, r0, r1, c0, c1, u, x, xo, xs) {
    for (let r = r0; r < r1; r++) {
      const o = r * lda;
      let e = 0;
      let d = 0;
      let c = c0;
      for (; c + 1 < c1; c += 2) {
        e += a[o + c] * u[c];
        d += a[o + c + 1] * u[c + 1];
      }
      if (c < c1) e += a[o + c] * u[c];
      x[xo + r * xs] = e + d;
    }
  },
  symv: symvLower,
  corr(a, ao, lda, x, xo, ldx, r0, r1, t1, t2, out, oo, os, scale, width = 8) {
    checkWidth(width);
    for (let r = r0; r < r1; r++) {
      const o = ao + r * lda;
      const q = xo + r * ldx;
      let s0 = a[o] * t1[0] + x[q] * t2[0];
      let s1 = a[o + 1] * t1[1] + x[q + 1] * t2[1];
      for (let p = 2; p < width; p += 2) {
        s0 += a[o + p] * t1[p] + x[q + p] * t2[p];
        s1 += a[o + p + 1] * t1[p + 1] + x[q + p + 1] * t2[p + 1];
      }
      const at = oo + r * os;
      out[at] = (out[at] - (s0 + s1)) * scale;
    }
  },
  colsT(a, ao, lda, x, xo, ldx, r0, r1, v, t1, t2, width = 8) {
    checkWidth(width);
    for (let r = r0; r < r1; r++) {
      const vr = v[r];
      const o = ao + r * lda;
      const q = xo + r * ldx;
      for (let p = 0; p < width; p++) {
        t1[p] += a[o + p] * vr;
        t2[p] += x[q + p] * vr;
      }
    }
  },
};

/** WASM SIMD kernels on one arena (one instance per thread: module state, not shared across workers). */
class WasmKernels implements DenseKernels {
  readonly name: 'wasm' | 'wasm-fma';
  private readonly arena = new WasmArena();
  private readonly ex: WasmDenseExports;

  /** With `fma`, the relaxed_madd build (only once wasmRelaxedSimdSupported() has said yes in this thread). */
  constructor(fma: boolean) {
    this.name = fma ? 'wasm-fma' : 'wasm';
    this.ex = instantiate<WasmDenseExports>(denseKernelModule(fma), this.arena.memory);
    this.corrFns = PANEL_WIDTHS.map((w) => this.ex[`corr${w}`]);
    this.colsTFns = PANEL_WIDTHS.map((w) => this.ex[`colsT${w}`]);
  }

  // The panel kernels by width index (width / 2 − 1; PANEL_WIDTHS are 2, 4, 6, 8).
  private readonly corrFns: WasmDenseExports[`corr${number}`][];
  private readonly colsTFns: WasmDenseExports[`colsT${number}`][];

  // The views handed out by the last buffers() call and their byte offsets, and the arena's buffer at that time.
  private views: Float64Array[] = [];
  private addrs: number[] = [];
  private live: ArrayBuffer | null = null;
  // Two doubles after the last buffer, where reflect() leaves its diag.
  private out = new Float64Array(0);
  private outAddr = 0;

  /**
   * Byte address of v[o] in the arena. Views from an earlier buffers() call, or arrays outside the arena, would be
   * read at a meaningless address by the kernel, so they are refused. The live views are recognised by identity
   * first: reading .buffer and .byteOffset of a view of wasm memory costs ≈ 20 ns each, and the reductions make
   * thousands of kernel calls with several arrays each. A subarray of a live view takes the checked path.
   */
  private at(v: Float64Array, o = 0): number {
    const views = this.views;
    for (let i = 0; i < views.length; i++) if (views[i] === v) return this.addrs[i] + o * 8;
    if (v.buffer !== this.live) throw new RangeError('wasm kernels: buffer is not a live view of the arena');
    return v.byteOffset + o * 8;
  }

  buffers(lengths: number[], dirty = 0): Float64Array[] {
    this.arena.reset();
    const offs = lengths.map((n) => this.arena.alloc(n * 8));
    this.outAddr = this.arena.alloc(16);
    // Views only after the last alloc: growing the memory detaches earlier views.
    const buf = this.arena.memory.buffer;
    const views = lengths.map((n, i) => new Float64Array(buf, offs[i], n));
    // Zeroing what the caller overwrites in full is wasted traffic (3 of a 348-wide weighted Gram's 4 MB).
    for (let i = 0; i < views.length - dirty; i++) views[i].fill(0);
    this.views = views.slice();
    this.addrs = offs;
    this.live = buf;
    this.out = new Float64Array(buf, this.outAddr, 2);
    return views;
  }

  gemmSub(c: Float64Array, c0: number, ldc: number, rows: number, cols: number, k: number, pa: Float64Array, pb: Float64Array, lower = false): void {
    const nrb = rows >> 2;
    const ncb = cols >> 2;
    if (lower && rows !== cols) throw new RangeError('gemmSub: a lower update needs a square block');
    if (nrb > 0 && ncb > 0) this.ex.gemm(this.at(c, c0), ldc * 8, nrb, ncb, k, this.at(pa), this.at(pb), lower ? 1 : 0);
    // Edge strips in JS (identical arithmetic): the partial last row block over all columns (for `lower` that is
    // exactly its blocks up to the diagonal, since rows = cols), then the partial column block of the full rows.
    const r4 = nrb * 4;
    if (rows > r4) gemmSubtract(c, c0 + r4 * ldc, ldc, rows - r4, cols, k, pa.subarray(r4 * k), pb);
    const c4 = ncb * 4;
    if (!lower && cols > c4 && r4 > 0) gemmSubtract(c, c0 + c4, ldc, r4, cols - c4, k, pa, pb.subarray(c4 * k));
  }

  atv(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, v: Float64Array, acc: Float64Array): void {
    if (r1 > r0 && c1 > c0) this.ex.atv(this.at(a), lda * 8, r0, r1, c0, c1, this.at(v), this.at(acc));
  }

  av(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, u: Float64Array, x: Float64Array, xo: number, xs: number): void {
    if (r1 > r0) this.ex.av(this.at(a), lda * 8, r0, r1, c0, c1, this.at(u), this.at(x, xo), xs * 8);
  }

  symv(a: Float64Array, lda: number, c0: number, n: number, v: Float64Array, acc: Float64Array): void {
    if (n > c0) this.ex.symv(this.at(a), lda * 8, c0, n, this.at(v), this.at(acc));
  }

  corr(a: Float64Array, ao: number, lda: number, x: Float64Array, xo: number, ldx: number, r0: number, r1: number, t1: Float64Array, t2: Float64Array, out: Float64Array, oo: number, os: number, scale: number, width = 8): void {
    checkWidth(width);
    if (r1 > r0) {
      this.corrFns[(width >> 1) - 1](this.at(a, ao), lda * 8, this.at(x, xo), ldx * 8, r0, r1, this.at(t1), this.at(t2), this.at(out, oo), os * 8, scale);
    }
  }

  colsT(a: Float64Array, ao: number, lda: number, x: Float64Array, xo: number, ldx: number, r0: number, r1: number, v: Float64Array, t1: Float64Array, t2: Float64Array, width = 8): void {
    checkWidth(width);
    if (r1 > r0) this.colsTFns[(width >> 1) - 1](this.at(a, ao), lda * 8, this.at(x, xo), ldx * 8, r0, r1, this.at(v), this.at(t1), this.at(t2));
  }

  gemmStrided(c: Float64Array, c0: number, ldc: number, rows: number, cols: number, k: number, a: Float64Array, a0: number, ablk: number, ars: number, acs: number, pb: Float64Array): void {
    if (cols % 4 !== 0) throw new RangeError(`gemmStrided: cols ${cols} is not a multiple of 4`);
    const nrb = rows >> 2;
    if (nrb > 0 && cols > 0 && k > 0) this.ex.gemmStrided(this.at(c, c0), ldc * 8, nrb, cols >> 2, k, this.at(a, a0), ablk * 8, ars * 8, acs * 8, this.at(pb));
    // A partial last row block in JS (identical arithmetic).
    if (rows > nrb * 4) gemmStridedSubtract(c, c0 + nrb * 4 * ldc, ldc, rows - nrb * 4, cols, k, a, a0 + nrb * ablk, ablk, ars, acs, pb);
  }

  pack(dst: Float64Array, rows: number, k: number, p0: number, p1: number, src: Float64Array, off: number, rs: number, ps: number, wp?: Float64Array): void {
    if (rows > 0 && p1 > p0) this.ex.pack(this.at(dst), rows, k, p0, p1, this.at(src, off), rs * 8, ps * 8, wp ? this.at(wp) : 0, wp ? 1 : 0);
  }

  reflect(x: Float64Array, off: number, stride: number, v: Float64Array, from: number, to: number): { diag: number; tau: number } {
    if (!(from < to)) throw new RangeError(`reflect: empty run [${from}, ${to})`);
    const tau = this.ex.reflect(this.at(x, off), stride * 8, from, to, this.at(v), this.outAddr);
    return { diag: this.out[0], tau };
  }

  wColumn(acc: Float64Array, v: Float64Array, c0: number, n: number, tau: number, w: Float64Array, wo: number, ws: number): void {
    if (n > c0) this.ex.wcol(this.at(acc), this.at(v), c0, n, tau, this.at(w, wo), ws * 8);
  }

  scaleTo(src: Float64Array, c0: number, c1: number, f: number, dst: Float64Array, dOff: number, ds: number): void {
    if (c1 > c0) this.ex.scaleTo(this.at(src), c0, c1, f, this.at(dst, dOff), ds * 8);
  }

  rowsAxpy(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, v: Float64Array, w: Float64Array): void {
    if (r1 > r0 && c1 > c0) this.ex.rowsAxpy(this.at(a), lda * 8, r0, r1, c0, c1, this.at(v), this.at(w));
  }

  rowsRank1(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, beta: number, v: Float64Array, w: Float64Array): void {
    if (r1 > r0 && c1 > c0) this.ex.rowsRank1(this.at(a), lda * 8, r0, r1, c0, c1, beta, this.at(v), this.at(w));
  }

  rowsDotRank1(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, beta: number, w: Float64Array): void {
    if (r1 > r0 && c1 > c0) this.ex.rowsDotRank1(this.at(a), lda * 8, r0, r1, c0, c1, beta, this.at(w));
  }
}

const wasmKernels: { wasm?: WasmKernels; 'wasm-fma'?: WasmKernels } = {};
let chosen: DenseKernelsName | null = null;

// Working sets above this stay in JS: wasm32 memory ends at 4 GiB, and an arena keeps its largest size for the life of
// the thread, so the rare huge dense reduction should not pin gigabytes in a worker.
const WASM_MAX_BYTES = 1 << 30;

/** The best kernels `which` allows on this engine: wasm-fma needs relaxed SIMD, either wasm needs SIMD. */
function available(which: DenseKernelsName): DenseKernelsName {
  if (which === 'js' || !wasmSimdSupported()) return 'js';
  // The relaxed SIMD probe (which may turn on Node 20's flag) runs only when the FMA build is wanted.
  return which === 'wasm-fma' && !wasmRelaxedSimdSupported() ? 'wasm' : which;
}

/**
 * The automatic choice: the fastest kernels the engine runs, unless the environment variable MORA_KERNELS says
 * `js` (the JS loops; the merge honours it too) or `wasm-nofma` (WASM SIMD without fused multiply–adds, the exact
 * twin of the JS loops). Benchmarks and bug reports compare them.
 */
function automatic(): DenseKernelsName {
  const env = typeof process === 'undefined' ? undefined : process.env.MORA_KERNELS;
  return available(env === 'js' ? 'js' : env === 'wasm-nofma' ? 'wasm' : 'wasm-fma');
}

/**
 * The kernels the reductions use: the automatic choice or the one set by `setDenseKernels`, except that working sets
 * (`lengths`, in float64 elements) past WASM_MAX_BYTES take the JS kernels.
 */
export function denseKernels(lengths: number[] = []): DenseKernels {
  if (lengths.reduce((a, n) => a + n, 0) * 8 > WASM_MAX_BYTES) return jsKernels;
  chosen ??= automatic();
  if (chosen === 'js') return jsKernels;
  return (wasmKernels[chosen] ??= new WasmKernels(chosen === 'wasm-fma'));
}

/**
 * Chooses the implementation ('auto' = the automatic choice, MORA_KERNELS included), falling back to what the engine
 * supports ('wasm-fma' → 'wasm' → 'js'); returns the one now in use.
 */
export function setDenseKernels(which: DenseKernelsName | 'auto'): DenseKernelsName {
  chosen = which === 'auto' ? automatic() : available(which);
  return denseKernels().name;
}
