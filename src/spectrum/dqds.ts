// Singular values of an upper bidiagonal matrix by the dqds algorithm (differential quotient–difference with shifts;
// Fernando & Parlett 1994, the method behind LAPACK dlasq). It works on the squares q_i = d_i², e_i = e_i² and finds
// the eigenvalues of BᵀB to high *relative* accuracy without forming BᵀB, one division and a few multiplications per
// element per sweep — several times cheaper than QL on the 2n×2n Golub–Kahan tridiagonal, which needs a square root
// and two divisions per element and works on twice the size.
//
// This is the positive case only: every d_i and e_i of a block must be nonzero. Callers split at zero e_i and fall
// back to QL for blocks with a zero d_i (a singular B, e.g. a rank-deficient input); `null` also asks for that fallback
// when the iteration misbehaves (no convergence, a non-finite value), so it can never do worse than QL.

const EPS = 2.220446049250313e-16;
/** Deflation tolerance on the squared off-diagonal, relative to the eigenvalue (LAPACK dlasq2 uses (100·eps)²). */
const TOL2 = (100 * EPS) ** 2;
/** Sweeps per block before giving up (dqds needs about 2–3 per eigenvalue). */
const MAX_SWEEPS_PER_VALUE = 30;

/**
 * Eigenvalues of BᵀB (= σ²) for the bidiagonal block with squared diagonal q (n) and squared super-diagonal e
 * (n − 1), all positive. Writes them to `out` starting at `at`; returns false when the caller should fall back.
 * All four arrays are destroyed (q2 and e2 are scratch of at least the same lengths).
 */
function dqdsBlock(qIn: Float64Array, eIn: Float64Array, q2In: Float64Array, e2In: Float64Array, n: number, out: Float64Array, at: number): boolean {
  // Each sweep writes the other pair of arrays; the pairs swap roles after a successful sweep.
  let q = qIn;
  let e = eIn;
  let q2 = q2In;
  let e2 = e2In;
  let sigma = 0; // shifts applied so far: the current arrays hold BᵀB − sigma·I in qd form
  let end = n;
  let dmin = 0; // smallest d of the last sweep: an upper bound on the smallest eigenvalue left
  let fails = 0;
  let sweeps = 0;
  const maxSweeps = MAX_SWEEPS_PER_VALUE * n + 10;
  while (end > 0) {
    if (end === 1) {
      out[at++] = q[0] + sigma;
      break;
    }
    // Deflate a negligible last off-diagonal (one eigenvalue), or a negligible one above the last 2×2 (two).
    const eb = e[end - 2];
    if (eb <= TOL2 * (sigma + q[end - 1]) || eb <= TOL2 * q[end - 2]) {
      out[at++] = q[end - 1] + sigma;
      end--;
      continue;
    }
    if (end === 2 || e[end - 3] <= TOL2 * (sigma + q[end - 2]) || e[end - 3] <= TOL2 * q[end - 3]) {
      // T = [[q0, √(q0·e0)], [√(q0·e0), q1 + e0]]: λ₊ from a sum of positives, λ₋ = det/λ₊ (no cancellation).
      const q0 = q[end - 2];
      const q1 = q[end - 1];
      const diff = q0 - q1;
      const big = 0.5 * (q0 + q1 + eb + Math.sqrt(diff * diff + eb * (eb + 2 * (q0 + q1))));
      out[at++] = big + sigma;
      out[at++] = (q0 * q1) / big + sigma;
      end -= 2;
      dmin = 0;
      continue;
    }
    if (++sweeps > maxSweeps) return false;
    // Shift: just below the smallest eigenvalue left. Both dmin and the smaller eigenvalue of the trailing 2×2 of
    // T (interlacing) bound it from above and approach it as the last off-diagonal converges, so near convergence
    // the shift is slightly below their minimum, otherwise a fraction of it. A failed sweep (a negative d: the shift
    // passed an eigenvalue) is retried with a quarter of the shift, the second retry with none.
    // Trailing 2×2 of T: [[q_{n−1} + e_{n−2}, ·], [·, q_n + e_{n−1}]] with off-diagonal² q_{n−1}·e_{n−1}.
    const qa = q[end - 2];
    const ea = e[end - 3];
    const cc = q[end - 1] + eb;
    const aa = qa + ea;
    const gap = aa - cc;
    const l2 = (qa * q[end - 1] + ea * cc) / (0.5 * (aa + cc + Math.sqrt(gap * gap + 4 * qa * eb)));
    // How far below: the relative size of the last off-diagonal and of the one above it (the 2×2 estimate is off
    // by about that much), so the margin shrinks as the block converges and convergence stays superlinear.
    const rho = eb / q[end - 1];
    const converging = rho < 0.1;
    const margin = Math.max(rho, (4 * ea) / qa) + 1e-15;
    let tau = fails >= 2 ? 0 : Math.min(dmin, l2) * (converging ? 1 - margin : 0.7) * (fails === 1 ? 0.25 : 1);
    if (!(tau >= 0)) tau = 0;
    // dqds(tau): q̂_i = d + e_i, t = q_{i+1}/q̂_i, ê_i = e_i·t, d ← d·t − tau; q̂_end = d.
    let d = q[0] - tau;
    let dm = d;
    let ok = d >= 0;
    for (let i = 0; ok && i < end - 1; i++) {
      const qh = d + e[i];
      const t = q[i + 1] / qh;
      q2[i] = qh;
      e2[i] = e[i] * t;
      d = d * t - tau;
      if (d < dm) dm = d;
      ok = d >= 0;
    }
    if (!ok || !Number.isFinite(dm)) {
      if (tau === 0) return false; // even the unshifted sweep broke down: leave it to QL
      fails++;
      continue;
    }
    q2[end - 1] = d;
    fails = 0;
    sigma += tau;
    dmin = dm;
    [q, q2] = [q2, q];
    [e, e2] = [e2, e];
  }
  return true;
}

/**
 * Singular values of the bidiagonal (d: n, e: n−1) by dqds, descending, or null when some block needs the QL route
 * (a zero diagonal entry inside an unreduced block, or a breakdown). Entries should already be thresholded: exact
 * zeros in e split the matrix.
 */
export function bidiagonalSingularValuesDqds(d: ArrayLike<number>, e: ArrayLike<number>): Float64Array | null {
  const n = d.length;
  let scale = 0;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(d[i]), i < n - 1 ? Math.abs(e[i]) : 0);
  const out = new Float64Array(n);
  if (scale === 0) return out;
  // Work on B/scale so the squares neither overflow nor lose the small entries to underflow (entries below
  // n·eps·max are zeroed by the caller, so their squares stay far above the underflow threshold).
  const q = new Float64Array(n);
  const ee = new Float64Array(n);
  const q2 = new Float64Array(n);
  const e2 = new Float64Array(n);
  let start = 0;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const last = i === n - 1 || e[i] === 0;
    if (!last) continue;
    // Block [start, i].
    const len = i - start + 1;
    for (let j = 0; j < len; j++) {
      const dj = d[start + j] / scale;
      if (dj === 0 && len > 1) return null;
      q[j] = dj * dj;
      if (j < len - 1) {
        const ej = e[start + j] / scale;
        ee[j] = ej * ej;
      }
    }
    if (!dqdsBlock(q, ee, q2, e2, len, out, at)) return null;
    at += len;
    start = i + 1;
  }
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(Math.max(out[i], 0)) * scale;
  return out.sort().reverse();
}

