// Singular values of an upper bidiagonal matrix by the dqds algorithm (differential quotient–difference with shifts;
// Fernando & Parlett 1994, the method behind LAPACK dlasq). It works on the squares q_i = d_i², e_i = e_i² and finds
// the eigenvalues of BᵀB to high *relative* accuracy without forming BᵀB, one division and a few multiplications per
// element per sweep — several times cheaper than QL on the 2n×2n Golub–Kahan tridiagonal, which needs a square root
// and two divisions per element and works on twice the size.
//
// The driver follows LAPACK dlasq2 (Parlett & Marques 2000): an initial reversal and two unshifted dqd passes with
// Li's splitting test, then per unreduced block a Gerschgorin-type first shift, an "aggressive" flip when the small
// end sits at the top, and steps (dqdsStep.ts: deflation, dlasq4 shifts from dqdsShift.ts, ping-pong sweeps) with a
// split check whenever some off-diagonal has become negligible. That takes about 2–3 sweeps per eigenvalue where a
// simpler shift strategy needs about 5 (the sweep is a division latency chain, so the count is the cost).
//
// This is the positive case only: every d_i and e_i of a block must be nonzero. Callers split at zero e_i and fall
// back to QL for blocks with a zero d_i (a singular B, e.g. a rank-deficient input); `null` also asks for that fallback
// when the iteration misbehaves (no convergence, a non-finite value), so it can never do worse than QL.

import { dqdsStep, newState, reverse, type QdState } from './dqdsStep';

/** Deflation tolerance² (dqdsStep.ts's; a local constant, not an import: tsx compiles imported constants to getters,
 *  which cost a call per read in the loops below). */
const TOL2 = (100 * 2.220446049250313e-16) ** 2;
/** Underflow guard of the splitting dqd passes (LAPACK's safe minimum). */
const SAFMIN = 2.2250738585072014e-308;
/** dqds steps per unreduced block and row before giving up (LAPACK's NBIG factor). */
const MAX_STEPS_PER_ROW = 100;

/** Sweeps run and row updates done by every call on this thread so far: a cost measure for tests and benchmarks. */
export const dqdsCounters = { sweeps: 0, steps: 0 };

/**
 * Eigenvalues of BᵀB (= σ²) for one block of n ≥ 3 rows held in the 1-based qd array z (q_k in slot 4k − 3, e_k in
 * 4k − 1, e_n = 0, the other slots free; length ≥ 4n + 1). On success they are in slots 4k − 3 (unordered); false
 * asks for the fallback.
 */
function dqdsBlock(z: Float64Array, n: number): boolean {
  let n0 = n;
  // Start from the end with the smaller q: dqds finds the small eigenvalues at the bottom first.
  if (1.5 * z[1] < z[4 * n - 3]) reverse(z, 1, n);
  // Two unshifted dqd passes with Li's test: an e_k below TOL² times the d of the recurrence running towards it splits
  // the block (marked −0), and the passes also bring the large values to the top.
  let pp = 0;
  let qmax = 0;
  for (let pass = 0; pass < 2; pass++) {
    let d = z[4 * n0 + pp - 3];
    for (let i4 = 4 * (n0 - 1) + pp; i4 >= 4 + pp; i4 -= 4) {
      if (z[i4 - 1] <= TOL2 * d) {
        z[i4 - 1] = -0;
        d = z[i4 - 3];
      } else d = z[i4 - 3] * (d / (d + z[i4 - 1]));
    }
    d = z[1 + pp];
    for (let i4 = 4 + pp; i4 <= 4 * (n0 - 1) + pp; i4 += 4) {
      const w = i4 - 2 * pp - 2; // slot of the new q_k
      z[w] = d + z[i4 - 1];
      if (z[i4 - 1] <= TOL2 * d) {
        z[i4 - 1] = -0;
        z[w] = d;
        z[w + 2] = 0;
        d = z[i4 + 1];
      } else if (SAFMIN * z[i4 + 1] < z[w] && SAFMIN * z[w] < z[i4 + 1]) {
        const t = z[i4 + 1] / z[w];
        z[w + 2] = z[i4 - 1] * t;
        d *= t;
      } else {
        z[w + 2] = z[i4 + 1] * (z[i4 - 1] / z[w]);
        d = z[i4 + 1] * (d / z[w]);
      }
    }
    z[4 * n0 - pp - 2] = d;
    qmax = z[2 - pp];
    for (let i4 = 6 - pp; i4 <= 4 * n0 - pp - 2; i4 += 4) qmax = Math.max(qmax, z[i4]);
    pp = 1 - pp;
  }
  const st = newState(1, n0);
  st.qmax = qmax;
  st.sweeps = 2;
  st.steps = 2 * (n0 - 1);
  try {
    // Each pass takes the last unreduced block i0..n0 (e_k ≤ 0 marks a split; −e_k there is the shift that block had
    // reached when it split off) and iterates on it until every row has deflated.
    for (let block = 0; block <= n; block++) {
      if (n0 < 1) return true;
      st.desig = 0;
      st.sigma = n0 === n ? 0 : -z[4 * n0 - 1];
      if (st.sigma < 0) return false;
      // Find the block's top, its largest q + e, and a Gerschgorin-type lower bound on its eigenvalues when the
      // e's are small next to the q's (then the first shift can be positive at once).
      let emax = 0;
      let qmin = z[4 * n0 - 3];
      st.qmax = qmin;
      let i4 = 4 * n0;
      for (; i4 >= 8; i4 -= 4) {
        if (z[i4 - 5] <= 0) break;
        if (qmin >= 4 * emax) {
          qmin = Math.min(qmin, z[i4 - 3]);
          emax = Math.max(emax, z[i4 - 5]);
        }
        st.qmax = Math.max(st.qmax, z[i4 - 7] + z[i4 - 5]);
      }
      let i0 = i4 / 4;
      st.pp = 0;
      if (n0 - i0 > 1) {
        // Flip when the smallest d of an unshifted dqd lies in the top third and is well below the last q: the small
        // eigenvalues are then nearer the top, and dqds converges at the bottom.
        let dee = z[4 * i0 - 3];
        let deemin = dee;
        let kmin = i0;
        for (let j4 = 4 * i0 + 1; j4 <= 4 * n0 - 3; j4 += 4) {
          dee = z[j4] * (dee / (dee + z[j4 - 2]));
          if (dee <= deemin) {
            deemin = dee;
            kmin = (j4 + 3) / 4;
          }
        }
        if ((kmin - i0) * 2 < n0 - kmin && deemin <= 0.5 * z[4 * n0 - 3]) {
          reverse(z, i0, n0);
          st.pp = 2;
        }
      }
      // A non-positive d_min tells the shift selection to use −d_min: the Gerschgorin bound.
      st.dmin = -Math.max(0, qmin - 2 * Math.sqrt(qmin) * Math.sqrt(emax));
      st.i0 = i0;
      st.n0 = n0;
      const maxSteps = MAX_STEPS_PER_ROW * (n0 - i0 + 1);
      let steps = 0;
      for (; st.i0 <= st.n0; steps++) {
        if (steps >= maxSteps) return false;
        dqdsStep(z, st);
        st.pp = 1 - st.pp;
        if (st.pp === 0 && st.n0 - st.i0 >= 3) splitCheck(z, st);
      }
      n0 = st.n0;
    }
    return false;
  } finally {
    dqdsCounters.sweeps += st.sweeps;
    dqdsCounters.steps += st.steps;
  }
}

/**
 * When the smallest e of the last sweep (slot 4·n0) or of the one before (4·n0 − 1) is negligible, split the block
 * there: mark the split with −sigma in its e slot and continue on the part below it.
 */
function splitCheck(z: Float64Array, st: QdState): void {
  const { i0, n0, sigma } = st;
  if (!(z[4 * n0] <= TOL2 * st.qmax || z[4 * n0 - 1] <= TOL2 * sigma)) return;
  let splt = i0 - 1;
  let qmax = z[4 * i0 - 3];
  let emin = z[4 * i0 - 1];
  let oldemn = z[4 * i0];
  for (let i4 = 4 * i0; i4 <= 4 * (n0 - 3); i4 += 4) {
    if (z[i4] <= TOL2 * z[i4 - 3] || z[i4 - 1] <= TOL2 * sigma) {
      z[i4 - 1] = -sigma;
      splt = i4 / 4;
      qmax = 0;
      emin = z[i4 + 3];
      oldemn = z[i4 + 4];
    } else {
      qmax = Math.max(qmax, z[i4 + 1]);
      emin = Math.min(emin, z[i4 - 1]);
      oldemn = Math.min(oldemn, z[i4]);
    }
  }
  z[4 * n0 - 1] = emin;
  z[4 * n0] = oldemn;
  st.qmax = qmax;
  st.i0 = splt + 1;
}

/** Eigenvalues of the 2×2 block [q1, e1, q2] of BᵀB into out[at], out[at + 1], without cancellation (dlasq2's n = 2). */
function twoByTwo(q1: number, e1: number, q2: number, out: Float64Array, at: number): void {
  if (q2 > q1) [q1, q2] = [q2, q1];
  if (e1 > q2 * TOL2) {
    let t = 0.5 * (q1 - q2 + e1);
    let s = q2 * (e1 / t);
    s = s <= t ? q2 * (e1 / (t * (1 + Math.sqrt(1 + s / t)))) : q2 * (e1 / (t + Math.sqrt(t) * Math.sqrt(t + s)));
    t = q1 + (s + e1);
    q2 *= q1 / t;
    q1 = t;
  }
  out[at] = q1;
  out[at + 1] = q2;
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
  const z = new Float64Array(4 * n + 4); // the 1-based qd array of one block at a time: [4·len + 1] used
  let start = 0;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const last = i === n - 1 || e[i] === 0;
    if (!last) continue;
    // Block [start, i].
    const len = i - start + 1;
    z.fill(0, 0, 4 * len + 4);
    for (let j = 0; j < len; j++) {
      const dj = d[start + j] / scale;
      if (dj === 0 && len > 1) return null;
      z[4 * j + 1] = dj * dj;
      if (j < len - 1) {
        const ej = e[start + j] / scale;
        z[4 * j + 3] = ej * ej;
      }
    }
    if (len === 1) out[at] = z[1];
    else if (len === 2) twoByTwo(z[1], z[3], z[5], out, at);
    else if (!dqdsBlock(z, len)) return null;
    else for (let k = 0; k < len; k++) out[at + k] = z[4 * k + 1];
    at += len;
    start = i + 1;
  }
  for (let i = 0; i < n; i++) {
    // A non-finite or clearly negative eigenvalue means the iteration went wrong somewhere: leave it to QL.
    if (!(out[i] >= -TOL2)) return null;
    out[i] = Math.sqrt(Math.max(out[i], 0)) * scale;
  }
  return out.sort().reverse();
}
