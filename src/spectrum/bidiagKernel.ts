// Blocked Golub–Kahan bidiagonalisation (values only), LAPACK dgebrd/dlabrd style. Each panel of nb columns is
// reduced with matrix–vector products against the not-yet-updated trailing matrix plus low-rank corrections; the
// trailing matrix then takes all nb reflector pairs at once as one rank-2nb update A −= V·Yᵀ + X·Uᵀ through the
// register-blocked kernel. That halves the passes over the trailing matrix of the unblocked reduction and moves
// half of the flops into the fast kernel. Every loop over the trailing matrix or a full panel goes through
// DenseKernels (WASM SIMD where available, bit-identical JS otherwise); what stays here is O(n) per column.

import { denseKernels, type DenseKernels } from './denseKernels';
import { bidiagonalize } from './linalg';

/**
 * Panel width (columns per blocked step). 8 measured best of 8/16/32 for 256², 348² and 348×268 (2026-11-23): 16
 * is 0–4% slower, 32 is 6–25% slower; the rank-2·NB update gains little from a deeper K (18.7 → ≈20
 * GFLOP/s), while the five per-column panel corrections (≈9–14 GFLOP/s) grow with NB.
 */
const NB = 8;
/** Below this many remaining columns the unblocked reduction finishes the job. */
const NX = 48;
/** Width of the panel kernels for the first `i` ≥ 1 panel columns: i rounded up to even. */
const width = (i: number): number => (i + 1) & ~1;

/**
 * Same result as `bidiagonalize` (m ≥ n, returns d and the super-diagonal e of B = Uᵀ A V), but blocked, and on a
 * copy (in the kernels' buffers): `a` is not modified. Falls back to the unblocked routine for small matrices.
 */
export function bidiagonalizeBlocked(a: Float64Array | Float32Array, m: number, n: number): { d: Float64Array; e: Float64Array } {
  if (n <= NX) {
    if (m < n) return bidiagonalize(Float64Array.from(a.subarray(0, m * n)), m, n); // refuses the shape
    const small = [m * n, m, n];
    const sk = denseKernels(small);
    const [s, sv, sw] = sk.buffers(small);
    s.set(a.subarray(0, m * n));
    return bidiagonalizeUnblocked(sk, s, m, n, sv, sw);
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n - 1);
  const K = 2 * NB;
  const packLen = (len: number) => Math.ceil(len / 4) * 4 * K;
  // All working storage in one call (arena views on the wasm path): the matrix, X[r·NB + p] (rows r ≥ k of the
  // current panel), Y[c·NB + p] and Uᵀ[c·NB + p] (columns c ≥ k; the right vectors, also kept in A's rows, copied
  // here so that Y and Uᵀ share one correction pass), the reflector vectors, and the packed trailing-update operands.
  const lengths = [m * n, m * NB, n * NB, n * NB, m, n, n, NB, NB, packLen(m), packLen(n)];
  const kern = denseKernels(lengths);
  const [A, x, y, ut, v, u, acc, t1, t2, pa, pb] = kern.buffers(lengths);
  A.set(a.subarray(0, m * n));
  const w: PanelWork = { x, y, ut, v, u, acc, t1, t2, kern };
  let k = 0;
  for (; n - k > NX; k += NB) {
    panel(A, m, n, k, d, e, w);
    // Trailing update A[k+NB:, k+NB:] −= [V X]·[Yᵀ; U]: [rows, 2·NB] x [2·NB, cols] -> [rows, cols]
    const r0 = k + NB;
    const rows = m - r0;
    const cols = n - r0;
    // Ā(r, p) = V(r0 + r, p) | X(r0 + r, p − NB);  B̄ᵀ(c, p) = Y(r0 + c, p) | Uᵀ(r0 + c, p − NB)
    kern.pack(pa, rows, K, 0, NB, A, r0 * n + k, n, 1);
    kern.pack(pa, rows, K, NB, K, x, r0 * NB, NB, 1);
    kern.pack(pb, cols, K, 0, NB, y, r0 * NB, NB, 1);
    kern.pack(pb, cols, K, NB, K, ut, r0 * NB, NB, 1);
    kern.gemmSub(A, r0 * n + r0, n, rows, cols, K, pa, pb);
  }
  // The last few columns, unblocked, on the trailing block compacted to the front of A (row i moves to i·nt ≤ its
  // old place, and past the rows before it, so copying in row order is safe).
  const mt = m - k;
  const nt = n - k;
  for (let i = 0; i < mt; i++) A.copyWithin(i * nt, (k + i) * n + k, (k + i) * n + n);
  const rest = bidiagonalizeUnblocked(kern, A, mt, nt, v, acc);
  d.set(rest.d, k);
  e.set(rest.e, k);
  return { d, e };
}

interface PanelWork {
  x: Float64Array;
  y: Float64Array;
  ut: Float64Array;
  v: Float64Array;
  u: Float64Array;
  acc: Float64Array;
  t1: Float64Array;
  t2: Float64Array;
  kern: DenseKernels;
}

/**
 * Reduces columns k..k+NB−1 (and the matching rows) of `a`, leaving the left vectors below the diagonal of the
 * panel columns, the right vectors right of the super-diagonal of the panel rows (unit heads stored as 1), and X, Y
 * such that the trailing matrix still needs A −= V·Yᵀ + X·Uᵀ. Indices follow LAPACK dlabrd with g = k + i.
 */
function panel(a: Float64Array, m: number, n: number, k: number, d: Float64Array, e: Float64Array, w: PanelWork): void {
  const { x, y, ut, v, u, acc, t1, t2, kern } = w;
  for (let i = 0; i < NB; i++) {
    const g = k + i;
    // Column g catches up with the panel's earlier reflectors: A(g:m, g) −= V(g:m, :i)·Y(g, :i)ᵀ + X(g:m, :i)·U(:i, g).
    // The corrections run over width(i) panel columns with zero weights past i (unprocessed columns are finite).
    if (i > 0) {
      for (let p = 0; p < NB; p++) {
        t1[p] = p < i ? y[g * NB + p] : 0;
        t2[p] = p < i ? ut[g * NB + p] : 0;
      }
      kern.corr(a, k, n, x, 0, NB, g, m, t1, t2, a, g, n, 1, width(i));
    }
    const left = kern.reflect(a, g, n, v, g, m);
    d[g] = left.diag;
    const tauq = left.tau;

    // Y(g+1:n, i) = τq·[A(g:m, g+1:n)ᵀ v − Y(g+1:n, :i)·(Vᵀv) − Uᵀ·(Xᵀv)] against the panel-start trailing matrix.
    const c0 = g + 1;
    acc.fill(0, c0, n);
    kern.atv(a, n, g, m, c0, n, v, acc);
    if (i > 0) {
      clear(t1, 0, t2, 0);
      kern.colsT(a, k, n, x, 0, NB, g, m, v, t1, t2, width(i));
      clear(t1, i, t2, i);
      kern.corr(y, 0, NB, ut, 0, NB, c0, n, t1, t2, acc, 0, 1, 1, width(i));
    }
    kern.scaleTo(acc, c0, n, tauq, y, i, NB);

    // Row g catches up: A(g, g+1:n) −= Y(g+1:n, :i+1)·A(g, k:g+1)ᵀ + Uᵀ(g+1:n, :i)·X(g, :i)ᵀ.
    const go = g * n;
    for (let p = 0; p < NB; p++) {
      t1[p] = p <= i ? a[go + k + p] : 0;
      t2[p] = p < i ? x[g * NB + p] : 0;
    }
    kern.corr(y, 0, NB, ut, 0, NB, c0, n, t1, t2, a, go, 1, 1, width(i + 1));
    // Right reflector on the (contiguous) row segment A(g, g+1:n).
    const right = kern.reflect(a, go, 1, u, c0, n);
    e[g] = right.diag;
    const taup = right.tau;
    kern.scaleTo(u, c0, n, 1, ut, i, NB); // Uᵀ(g+1:n, i) = u (a factor of 1 copies exactly)

    // X(g+1:m, i) = τp·[A(g+1:m, g+1:n)·u − V(g+1:m, :i+1)·(Yᵀu) − X(g+1:m, :i)·(U·u)].
    clear(t1, 0, t2, 0);
    kern.colsT(y, 0, NB, ut, 0, NB, c0, n, u, t1, t2, width(i + 1)); // t1 = Yᵀu, t2 = U·u
    clear(t1, i + 1, t2, i);
    x[g * NB + i] = 0;
    kern.av(a, n, g + 1, m, c0, n, u, x, i, NB);
    kern.corr(a, k, n, x, 0, NB, g + 1, m, t1, t2, x, i, NB, taup, width(i + 1));
  }
}

/**
 * Zeroes t1[f1:NB] and t2[f2:NB]. A plain loop: TypedArray.fill is a builtin call that costs more than the eight
 * stores, and the panel clears its coefficient vectors eight times a column.
 */
function clear(t1: Float64Array, f1: number, t2: Float64Array, f2: number): void {
  for (let p = f1; p < NB; p++) t1[p] = 0;
  for (let p = f2; p < NB; p++) t2[p] = 0;
}

/**
 * linalg.ts's bidiagonalize (m ≥ n, unblocked) on buffers of `kern`, its row loops as kernels; v (≥ m) and w (≥ n)
 * are scratch. The reflectors are stored back into the reduced column and row, which bidiagonalize skips: neither is
 * read again, so d and e are bit-identical to it.
 */
function bidiagonalizeUnblocked(kern: DenseKernels, a: Float64Array, m: number, n: number, v: Float64Array, w: Float64Array): { d: Float64Array; e: Float64Array } {
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  for (let k = 0; k < n; k++) {
    // Left reflector on column k; A[k:, k+1:] −= τ·v·(vᵀA[k:, k+1:]).
    const left = kern.reflect(a, k, n, v, k, m);
    d[k] = left.diag;
    if (left.tau !== 0) {
      w.fill(0, k + 1, n);
      kern.rowsAxpy(a, n, k, m, k + 1, n, v, w);
      kern.rowsRank1(a, n, k, m, k + 1, n, left.tau, v, w);
    }
    if (k >= n - 1) break;
    if (k === n - 2) {
      e[k] = a[k * n + k + 1];
      continue;
    }
    // Right reflector on row k; A[k+1:, k+1:] −= τ·(A[k+1:, k+1:]·w)·wᵀ.
    const right = kern.reflect(a, k * n, 1, w, k + 1, n);
    e[k] = right.diag;
    if (right.tau !== 0) kern.rowsDotRank1(a, n, k + 1, m, k + 1, n, right.tau, w);
  }
  return { d, e };
}
