// Householder reflectors (LAPACK dlarfg style) and the dot product the unblocked reductions use. Shared by the
// unblocked reductions (linalg.ts), the blocked ones (bidiagKernel.ts, tridiagKernel.ts) and the QR (factor.ts).

/**
 * Householder reflector H = I − τ·u·uᵀ with H·x = s·e₁, LAPACK style (u₀ = 1, τ ∈ [1, 2] or 0). On entry
 * v[from..to) holds x; on exit it holds u. Norms are computed scaled, and no step squares s, so tiny trailing
 * columns (the rounding noise of a rank-deficient matrix shrinks to ~1e-154 and below) neither underflow nor NaN.
 */
export function reflector(v: Float64Array, from: number, to: number): { s: number; tau: number } {
  let scale = 0;
  for (let i = from; i < to; i++) scale = Math.max(scale, Math.abs(v[i]));
  const x0 = v[from];
  if (scale === 0) return { s: 0, tau: 0 };
  let ss = 0;
  for (let i = from; i < to; i++) {
    const t = v[i] / scale;
    ss += t * t;
  }
  const alpha = scale * Math.sqrt(ss);
  const s = x0 > 0 ? -alpha : alpha; // the sign that avoids cancellation in x0 − s
  const denom = x0 - s;
  v[from] = 1;
  for (let i = from + 1; i < to; i++) v[i] /= denom;
  return { s, tau: (s - x0) / s };
}

/**
 * reflector() of the strided run x[off + i·stride], i in [from, to), copied into v[from..to). `diag` is what the
 * reduction leaves at the run's head: s, or the head itself when the run is already zero (tau = 0). With `store`
 * the reflector vector goes back into the run with its unit head, as the blocked reductions keep it.
 */
export function reflectRun(
  x: Float64Array, off: number, stride: number, v: Float64Array, from: number, to: number, store = false,
): { diag: number; tau: number } {
  for (let i = from; i < to; i++) v[i] = x[off + i * stride];
  const { s, tau } = reflector(v, from, to);
  const diag = tau === 0 ? x[off + from * stride] : s;
  if (store) {
    v[from] = 1;
    for (let i = from; i < to; i++) x[off + i * stride] = v[i];
  }
  return { diag, tau };
}

/**
 * Σ a[off + j]·w[j] for j in [from, to). Four independent partial sums: a single accumulator makes the loop wait on
 * the floating-point add latency, which costs about 3× on the matrix sizes used here.
 */
export function dotFrom(a: Float64Array, off: number, w: Float64Array, from: number, to: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = from;
  for (; j + 3 < to; j += 4) {
    s0 += a[off + j] * w[j];
    s1 += a[off + j + 1] * w[j + 1];
    s2 += a[off + j + 2] * w[j + 2];
    s3 += a[off + j + 3] * w[j + 3];
  }
  for (; j < to; j++) s0 += a[off + j] * w[j];
  return s0 + s1 + (s2 + s3);
}
