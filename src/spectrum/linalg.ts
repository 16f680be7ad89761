// Dense float64 eigen- and singular-value routines, written for the sizes the structured spectra need (a few hundred)
// and usable up to a few thousand. Everything is row-major Float64Array; nothing here allocates per inner iteration.
//
// Singular values go through Golub–Kahan bidiagonalisation (blocked: bidiagKernel.ts) and then dqds on the
// bidiagonal (dqds.ts, high relative accuracy), with implicit QL on the 2n×2n "perfect shuffle" tridiagonal
// [[0, B], [Bᵀ, 0]] (eigenvalues ±σᵢ) where dqds declines. Both keep the absolute accuracy at about eps·σ_max, which
// squaring into a Gram matrix would lose (there the floor is sqrt(eps)·σ_max).

import { bidiagonalizeBlocked } from './bidiagKernel';
import { bidiagonalSingularValuesDqds } from './dqds';
import { rowsAxpy, rowsDotRank1, rowsRank1 } from './columnKernels';
import { reflectRun } from './householder';
import { tridiagonalizeBlocked } from './tridiagKernel';
import { KindError } from '../util/kindError';

/** Numerical failure in a dense routine (no convergence, bad shape). */
export class LinalgError extends KindError<'NoConvergence' | 'BadShape'> {
  override name = 'LinalgError';
}

const EPS = 2.220446049250313e-16;

/** Checks that a buffer holds exactly rows × cols values. */
export function checkShape(a: ArrayLike<number>, rows: number, cols: number, what = 'matrix'): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0 || a.length !== rows * cols) {
    throw new LinalgError('BadShape', `${what}: expected ${rows}×${cols} = ${rows * cols} values, got ${a.length}`);
  }
}

/**
 * Eigenvalues of the symmetric tridiagonal matrix with diagonal d (length n) and sub-diagonal e (length n-1),
 * by the implicit QL algorithm with Wilkinson-style shifts. Inputs are not modified. Returns them descending.
 */
export function tridiagonalEigenvalues(dIn: ArrayLike<number>, eIn: ArrayLike<number>): Float64Array {
  const n = dIn.length;
  const d = Float64Array.from(dIn);
  const e = new Float64Array(n); // e[i] couples i and i+1; e[n-1] stays 0 as a sentinel
  for (let i = 0; i < n - 1; i++) e[i] = eIn[i];
  // Deflate when an off-diagonal is negligible next to its neighbours (keeps relative accuracy on graded matrices)
  // or next to the whole matrix: the zero-diagonal Golub–Kahan matrix of a rank-deficient B has |d| = 0 where the
  // relative test alone would never fire.
  let anorm = 0;
  for (let i = 0; i < n; i++) anorm = Math.max(anorm, Math.abs(d[i]) + Math.abs(e[i]) + (i > 0 ? Math.abs(e[i - 1]) : 0));
  const absTol = EPS * anorm;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      // Find the first negligible off-diagonal at or after l: the block [l, m] is unreduced.
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= EPS * dd || Math.abs(e[m]) <= absTol) break;
      }
      if (m === l) break;
      if (++iter > 60) throw new LinalgError('NoConvergence', `tridiagonal QL did not converge at index ${l}`);
      // Shift from the leading 2×2 block, then chase the bulge from m up to l with plane rotations.
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      let deflated = false;
      for (; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // An exact zero split the block: undo the pending shift and restart on the smaller block.
          d[i + 1] -= p;
          e[m] = 0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
      }
      if (deflated) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
  return d.sort().reverse();
}

/**
 * √(x² + y²). Math.hypot is several times slower than the plain formula in V8 and this sits in the QL inner loop;
 * the plain formula is exact enough whenever the squares neither overflow nor lose everything to underflow, and the
 * rare remaining cases take the careful route.
 */
function hypot(x: number, y: number): number {
  const r = Math.sqrt(x * x + y * y);
  return r > 1e-150 && r < 1e150 ? r : Math.hypot(x, y);
}

/**
 * Householder reduction of a symmetric n×n matrix to tridiagonal form (values only). Reads and destroys the lower
 * triangle of `a`. Cost ≈ 4n³/3 flops.
 */
export function tridiagonalize(a: Float64Array, n: number): { d: Float64Array; e: Float64Array } {
  checkShape(a, n, n);
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    d[k] = a[k * n + k];
    const { diag, tau } = reflectRun(a, k, n, v, k + 1, n);
    e[k] = diag;
    if (tau === 0) continue;
    // p = τ A₂₂ v using the lower triangle only; then w = p − (τ vᵀp / 2) v and A₂₂ −= v wᵀ + w vᵀ.
    p.fill(0, k + 1, n);
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i];
      let acc = a[row + i] * vi;
      for (let j = k + 1; j < i; j++) {
        const aij = a[row + j];
        acc += aij * v[j];
        p[j] += aij * vi;
      }
      p[i] += acc;
    }
    let pv = 0;
    for (let i = k + 1; i < n; i++) {
      p[i] *= tau;
      pv += p[i] * v[i];
    }
    const half = 0.5 * pv * tau;
    for (let i = k + 1; i < n; i++) p[i] -= half * v[i];
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i];
      const wi = p[i];
      for (let j = k + 1; j <= i; j++) a[row + j] -= vi * p[j] + wi * v[j];
    }
  }
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * n + n - 2];
    e[n - 2] = a[(n - 1) * n + n - 2];
  }
  if (n >= 1) d[n - 1] = a[(n - 1) * n + n - 1];
  return { d, e };
}

/** Eigenvalues of a symmetric n×n matrix (lower triangle read), descending. The input is not modified. */
export function symmetricEigenvalues(a: ArrayLike<number>, n: number): Float64Array {
  checkShape(a, n, n);
  // The blocked reduction copies its input into its own buffers (and never modifies it).
  const { d, e } = tridiagonalizeBlocked(a instanceof Float64Array ? a : Float64Array.from(a), n);
  return tridiagonalEigenvalues(d, e);
}

/**
 * Golub–Kahan bidiagonalisation of an m×n matrix with m ≥ n (values only): returns the diagonal d (n) and the
 * super-diagonal e (n−1) of B = Uᵀ A V. Destroys `a`. Cost ≈ 4mn² − 4n³/3 flops.
 */
export function bidiagonalize(a: Float64Array, m: number, n: number): { d: Float64Array; e: Float64Array } {
  checkShape(a, m, n);
  if (m < n) throw new LinalgError('BadShape', `bidiagonalize needs m >= n, got ${m}×${n}`);
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  const v = new Float64Array(m);
  const w = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    // Left reflector: zero column k below the diagonal.
    const left = reflectRun(a, k, n, v, k, m);
    d[k] = left.diag;
    if (left.tau !== 0) {
      // wᵀ = vᵀ A[k:, k+1:], accumulated row by row so the inner loop runs over contiguous memory, then
      // A[k:, k+1:] −= τ·v·wᵀ (the same row loops the blocked routine's WASM tail runs: columnKernels.ts).
      w.fill(0, k + 1, n);
      rowsAxpy(a, n, k, m, k + 1, n, v, w);
      rowsRank1(a, n, k, m, k + 1, n, left.tau, v, w);
    }
    if (k >= n - 1) break;
    // Right reflector: zero row k right of the super-diagonal.
    const rowK = k * n;
    if (k === n - 2) {
      e[k] = a[rowK + k + 1];
      continue;
    }
    const right = reflectRun(a, rowK, 1, w, k + 1, n);
    e[k] = right.diag;
    if (right.tau === 0) continue;
    rowsDotRank1(a, n, k + 1, m, k + 1, n, right.tau, w);
  }
  return { d, e };
}

/** Singular values of an upper bidiagonal matrix (d: n, e: n−1), descending, via its 2n×2n shuffle. */
export function bidiagonalSingularValues(d: ArrayLike<number>, e: ArrayLike<number>): Float64Array {
  const n = d.length;
  if (n === 0) return new Float64Array(0);
  if (n === 1) return Float64Array.of(Math.abs(d[0]));
  // Entries below n·eps·max|B| are rounding noise from the reduction (a rank-deficient A leaves a long run of them);
  // zeroing them moves σ by at most 2·n·eps·‖B‖ and splits the tridiagonal, which QL otherwise grinds through slowly.
  let bmax = 0;
  for (let i = 0; i < n; i++) bmax = Math.max(bmax, Math.abs(d[i]), i < n - 1 ? Math.abs(e[i]) : 0);
  const thr = n * EPS * bmax;
  const dt = new Float64Array(n);
  const et = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    dt[i] = Math.abs(d[i]) > thr ? d[i] : 0;
    if (i < n - 1) et[i] = Math.abs(e[i]) > thr ? e[i] : 0;
  }
  // dqds first (faster, high relative accuracy); QL on the Golub–Kahan form where dqds declines (zero diagonal
  // inside a block, or a breakdown).
  const fast = bidiagonalSingularValuesDqds(dt, et);
  if (fast) return fast;
  const off = new Float64Array(2 * n - 1);
  for (let i = 0; i < n; i++) {
    off[2 * i] = dt[i];
    if (i < n - 1) off[2 * i + 1] = et[i];
  }
  const ev = tridiagonalEigenvalues(new Float64Array(2 * n), off);
  const s = new Float64Array(n);
  // The top half of ±σ sorted descending is σ itself; a zero σ can come out as −tiny, so clamp.
  for (let i = 0; i < n; i++) s[i] = Math.max(ev[i], 0);
  return s;
}

/** Row-major transpose of an m×n matrix into a new n×m Float64Array. */
export function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

/** All min(m, n) singular values of a dense m×n matrix, descending, in float64. The input is not modified. */
export function singularValues(a: ArrayLike<number>, m: number, n: number): Float64Array {
  checkShape(a, m, n);
  if (m === 0 || n === 0) return new Float64Array(0);
  // The blocked reduction copies its input into its own buffers (and never modifies it), so a typed array needs
  // no copy here.
  const work = m < n ? transpose(a, m, n) : a instanceof Float64Array || a instanceof Float32Array ? a : Float64Array.from(a);
  const [rows, cols] = m >= n ? [m, n] : [n, m];
  const { d, e } = bidiagonalizeBlocked(work, rows, cols);
  return bidiagonalSingularValues(d, e);
}
