// Blocked Householder tridiagonalisation of a symmetric matrix (values only, lower triangle), LAPACK dsytrd/dlatrd
// style: each panel of nb columns is reduced with one symmetric matrix–vector product per column against the
// panel-start trailing matrix plus low-rank corrections, then the trailing matrix takes the whole panel as one
// rank-2nb update A −= V·Wᵀ + W·Vᵀ through the register-blocked kernel (half the flops, at ≈ 3× the speed). The
// symmetric products, panel corrections and the update run through DenseKernels (WASM SIMD or bit-identical JS).

import { denseKernels } from './denseKernels';
import { tridiagonalize } from './linalg';

/**
 * Panel width (columns per blocked step). 8 measured best of 8/16/32 for n = 348 and 616 (2026-11-23): the rank-2·NB
 * update only gains 18.7 → ≈20 GFLOP/s from 16 to 64 deep, while the per-column panel corrections, at ≈9–14
 * GFLOP/s, grow with NB (NB = 32: +3–13% time). NB = 16 (with the bidiagonal one) moved type-6 σ by 3e-12·σmax.
 */
const NB = 8;
/** Below this many remaining columns the unblocked reduction finishes the job. */
const NX = 48;
/** Width of the panel kernels for the first `i` ≥ 1 panel columns: i rounded up to even. */
const width = (i: number): number => (i + 1) & ~1;

/** Same result as `tridiagonalize` (reads the lower triangle), blocked, on a copy: `aIn` is not modified. */
export function tridiagonalizeBlocked(aIn: Float64Array, n: number): { d: Float64Array; e: Float64Array } {
  if (n <= NX) return tridiagonalize(Float64Array.from(aIn.subarray(0, n * n)), n);
  const d = new Float64Array(n);
  const e = new Float64Array(n - 1);
  const K = 2 * NB;
  const packLen = Math.ceil(n / 4) * 4 * K;
  // One call for all storage (arena views on the wasm path): the matrix, W[r·NB + p], vectors, packed operands.
  const lengths = [n * n, n * NB, n, n, NB, NB, packLen, packLen];
  const kern = denseKernels(lengths);
  const [a, w, v, acc, t1, t2, pa, pb] = kern.buffers(lengths);
  a.set(aIn.subarray(0, n * n));
  let k = 0;
  for (; n - k > NX; k += NB) {
    for (let i = 0; i < NB; i++) {
      const g = k + i;
      // Column g (lower part) catches up: A(g:n, g) −= V(g:n, :i)·W(g, :i)ᵀ + W(g:n, :i)·V(g, :i)ᵀ.
      // Corrections run over width(i) panel columns with zero weights past i (the values there are finite).
      if (i > 0) {
        t1.fill(0);
        t2.fill(0);
        for (let p = 0; p < i; p++) {
          t1[p] = w[g * NB + p];
          t2[p] = a[g * n + k + p];
        }
        kern.corr(a, k, n, w, 0, NB, g, n, t1, t2, a, g, n, 1, width(i));
      }
      d[g] = a[g * n + g];
      // Reflector on A(g+1:n, g); the vector stays in the column with its unit head.
      const c0 = g + 1;
      const h = kern.reflect(a, g, n, v, c0, n);
      e[g] = h.diag;
      const tau = h.tau;
      // W(g+1:n, i) = τ·[A₂₂ v − V·(Wᵀv) − W·(Vᵀv)], A₂₂ the panel-start trailing block (lower triangle).
      acc.fill(0, c0, n);
      kern.symv(a, n, c0, n, v, acc);
      if (i > 0) {
        t1.fill(0);
        t2.fill(0);
        kern.colsT(w, 0, NB, a, k, n, c0, n, v, t1, t2, width(i));
        t1.fill(0, i);
        t2.fill(0, i);
        kern.corr(a, k, n, w, 0, NB, c0, n, t1, t2, acc, 0, 1, 1, width(i));
      }
      kern.wColumn(acc, v, c0, n, tau, w, i, NB);
    }
    // Trailing update (lower triangle): A[k+NB:, k+NB:] −= [V W]·[W V]ᵀ : [rows, 2·NB] x [2·NB, rows] -> [rows, rows]
    const r0 = k + NB;
    const rows = n - r0;
    // Ā(r, p) = V(r0 + r, p) | W(r0 + r, p − NB);  B̄ᵀ(r, p) = W(r0 + r, p) | V(r0 + r, p − NB)
    kern.pack(pa, rows, K, 0, NB, a, r0 * n + k, n, 1);
    kern.pack(pa, rows, K, NB, K, w, r0 * NB, NB, 1);
    kern.pack(pb, rows, K, 0, NB, w, r0 * NB, NB, 1);
    kern.pack(pb, rows, K, NB, K, a, r0 * n + k, n, 1);
    kern.gemmSub(a, r0 * n + r0, n, rows, rows, K, pa, pb, true);
  }
  // The last few columns, unblocked, on a compact copy of the trailing block (its lower triangle is what counts).
  const nt = n - k;
  const tail = new Float64Array(nt * nt);
  for (let i = 0; i < nt; i++) tail.set(a.subarray((k + i) * n + k, (k + i) * n + k + i + 1), i * nt);
  const rest = tridiagonalize(tail, nt);
  d.set(rest.d, k);
  e.set(rest.e, k);
  return { d, e };
}
