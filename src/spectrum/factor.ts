// Small dense factorizations with vectors: Householder QR and one-sided Jacobi SVD. Row-major Float64Array.
// These serve the low-rank LoRA path (QR of tall m×r factors), randomized subspace iteration (thin Q), and small SVDs
// whose vectors are needed (intruder dimensions). One-sided Jacobi has high relative accuracy, so it is also the
// reference the faster bidiagonal route is tested against.

import { reflectRun } from './householder';
import { checkShape, LinalgError, transpose } from './linalg';

const EPS = 2.220446049250313e-16;

/** Dense product C = A·B for row-major A [m, k] and B [k, n]. */
export function matMul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  checkShape(a, m, k, 'matMul A');
  checkShape(b, k, n, 'matMul B');
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p];
      if (aip === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += aip * b[bp + j];
    }
  }
  return c;
}

/**
 * Householder QR of a tall m×n matrix (m ≥ n). Returns R [n, n] (upper triangular) and, when asked, the thin
 * Q [m, n] with orthonormal columns, so that A = Q·R.
 */
export function qr(
  aIn: ArrayLike<number>,
  m: number,
  n: number,
  wantQ = true,
): { q: Float64Array | null; r: Float64Array } {
  checkShape(aIn, m, n, 'qr');
  if (m < n) throw new LinalgError('BadShape', `qr needs a tall matrix, got ${m}×${n}`);
  const a = Float64Array.from(aIn);
  const vs: Float64Array[] = [];
  const betas = new Float64Array(n);
  const w = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const v = new Float64Array(m);
    vs.push(v);
    const { tau } = reflectRun(a, k, n, v, k, m);
    if (tau === 0) continue; // a zero column: the reflector is the identity
    const beta = tau;
    betas[k] = beta;
    w.fill(0, k, n);
    for (let i = k; i < m; i++) {
      const vi = v[i];
      if (vi === 0) continue;
      for (let j = k; j < n; j++) w[j] += vi * a[i * n + j];
    }
    for (let i = k; i < m; i++) {
      const f = beta * v[i];
      if (f === 0) continue;
      for (let j = k; j < n; j++) a[i * n + j] -= f * w[j];
    }
  }
  const r = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) r[i * n + j] = a[i * n + j];
  if (!wantQ) return { q: null, r };
  // Q = H₀ H₁ … H_{n−1} applied to the first n columns of the identity, back to front.
  const q = new Float64Array(m * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const beta = betas[k];
    if (beta === 0) continue;
    const v = vs[k];
    w.fill(0);
    for (let i = k; i < m; i++) {
      const vi = v[i];
      if (vi === 0) continue;
      for (let j = 0; j < n; j++) w[j] += vi * q[i * n + j];
    }
    for (let i = k; i < m; i++) {
      const f = beta * v[i];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) q[i * n + j] -= f * w[j];
    }
  }
  return { q, r };
}

export interface Svd {
  /** Left singular vectors as columns of a row-major [m, p] matrix, p = min(m, n). */
  u: Float64Array;
  /** Singular values, descending, length p. */
  s: Float64Array;
  /** Right singular vectors as columns of a row-major [n, p] matrix. */
  v: Float64Array;
  m: number;
  n: number;
  p: number;
}

/** The plane rotation [x, y] ← [c·x − s·y, s·x + c·y] of the runs a[i .. i+len) and a[j .. j+len). */
function rotate(a: Float64Array, i: number, j: number, len: number, c: number, s: number): void {
  for (let r = 0; r < len; r++) {
    const x = a[i + r];
    const y = a[j + r];
    a[i + r] = c * x - s * y;
    a[j + r] = s * x + c * y;
  }
}

/**
 * Thin SVD A = U·diag(s)·Vᵀ by one-sided (Hestenes) Jacobi on the columns. Accurate to high relative precision;
 * cost is O(sweeps · m·n²), so it is meant for matrices with at most a few hundred columns.
 */
export function svdJacobi(a: ArrayLike<number>, m: number, n: number, maxSweeps = 60): Svd {
  checkShape(a, m, n, 'svdJacobi');
  if (m < n) {
    const t = svdJacobi(transpose(a, m, n), n, m, maxSweeps);
    return { u: t.v, s: t.s, v: t.u, m, n, p: t.p };
  }
  // Work column-major: column j of A is g[j*m .. j*m+m), column j of V is vt[j*n .. j*n+n).
  const g = transpose(a, m, n);
  const vt = new Float64Array(n * n);
  for (let j = 0; j < n; j++) vt[j * n + j] = 1;
  // Columns count as orthogonal at |x·y| ≤ √m·ε·‖x‖‖y‖ (LAPACK dgesvj's tolerance): the computed dot product of two
  // long columns carries rounding noise of about that size, so a bare ε·‖x‖‖y‖ is never reached when singular values
  // cluster (a flat spectrum, e.g. the ΔW of a bf16 merge): rotations then churn at 1–3 ε and never converge.
  const tol = Math.sqrt(m) * EPS;
  let converged = false;
  for (let sweep = 0; sweep < maxSweeps && !converged; sweep++) {
    converged = true;
    for (let i = 0; i < n - 1; i++) {
      for (let j = i + 1; j < n; j++) {
        const oi = i * m;
        const oj = j * m;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let t = 0; t < m; t++) {
          const x = g[oi + t];
          const y = g[oj + t];
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        converged = false;
        // Rotation that makes columns i and j orthogonal (Rutishauser's formulation, the smaller angle).
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(g, oi, oj, m, c, s);
        rotate(vt, i * n, j * n, n, c, s);
      }
    }
  }
  if (!converged) throw new LinalgError('NoConvergence', `Jacobi SVD did not converge in ${maxSweeps} sweeps`);
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s2 = 0;
    for (let t = 0; t < m; t++) s2 += g[j * m + t] * g[j * m + t];
    norms[j] = Math.sqrt(s2);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => norms[y] - norms[x]);
  const u = new Float64Array(m * n);
  const v = new Float64Array(n * n);
  const s = new Float64Array(n);
  order.forEach((src, dst) => {
    const sv = norms[src];
    s[dst] = sv;
    for (let t = 0; t < m; t++) u[t * n + dst] = sv > 0 ? g[src * m + t] / sv : 0;
    for (let t = 0; t < n; t++) v[t * n + dst] = vt[src * n + t];
  });
  return { u, s, v, m, n, p: n };
}
