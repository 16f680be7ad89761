// One step of the dqds iteration (dqds.ts), after LAPACK dlasq3/dlasq5/dlasq6: deflate converged eigenvalues at the
// end of the block, flip the block when its small end is at the top, choose a shift (dqdsShift.ts) and run one
// shifted sweep (dqdsSweep.ts), retrying with a smaller shift when it fails.
//
// Layout (LAPACK's): z is 1-based, four slots per row k: q_k at 4k − 3 + pp, e_k at 4k − 1 + pp for the current
// ("ping", pp = 0, or "pong", pp = 1) values; a sweep reads one pair and writes the other, so a failed sweep is retried
// from intact data and a successful one costs no copy. Converged eigenvalues land in slot 4k − 3.

import { chooseShift } from './dqdsShift';
import { sweep, sweepUnshifted } from './dqdsSweep';

const EPS = 2.220446049250313e-16;
/** Deflation tolerance: an off-diagonal is negligible below TOL² times its neighbour (LAPACK: 100·eps). */
const TOL = 100 * EPS;
const TOL2 = TOL * TOL;
/** Flip the block when its last q exceeds CBIAS times its first: dqds converges fastest at a small bottom end. */
const CBIAS = 1.5;
const QURTR = 0.25;

/** Everything one step reads and updates besides z (LAPACK passes these as arguments to dlasq3). */
export interface QdState {
  /** Current unreduced block rows i0..n0 (1-based), and which slot pair holds its values (2 = just flipped). */
  i0: number;
  n0: number;
  pp: number;
  /** Shift applied so far, as the pair sigma + desig (compensated summation). */
  sigma: number;
  desig: number;
  qmax: number;
  /** The last sweep's smallest d overall, and in the last three rows and before them (dlasq5's outputs). */
  dmin: number;
  dmin1: number;
  dmin2: number;
  dn: number;
  dn1: number;
  dn2: number;
  /** The shift, the type of the last shift (dlasq4's case numbers; failures subtract 11 or 12) and case 6's fraction. */
  tau: number;
  ttype: number;
  g: number;
  /** Sweeps run and row updates done (sweep lengths summed), for the sweep counters. */
  sweeps: number;
  steps: number;
}

/** A fresh state for rows i0..n0 with no shift yet. */
export function newState(i0: number, n0: number): QdState {
  return { i0, n0, pp: 0, sigma: 0, desig: 0, qmax: 0, dmin: 0, dmin1: 0, dmin2: 0, dn: 0, dn1: 0, dn2: 0, tau: 0, ttype: 0, g: 0, sweeps: 0, steps: 0 };
}

/** One dlasq3 step on z: deflate, maybe flip, shift, sweep. The caller flips st.pp afterwards. */
export function dqdsStep(z: Float64Array, st: QdState): void {
  const n0in = st.n0;
  let sigma = st.sigma;
  // Deflate from the end while the last one or two off-diagonals are negligible. A just-flipped block (pp = 2) was
  // found unreduced and its slots are not in the layout these tests read, so they are skipped.
  while (st.pp !== 2) {
    const { i0, n0, pp } = st;
    if (n0 < i0) return;
    const nn = 4 * n0 + pp;
    if (n0 === i0) {
      z[4 * n0 - 3] = z[4 * n0 + pp - 3] + sigma;
      st.n0--;
      continue;
    }
    if (n0 > i0 + 1) {
      if (!(z[nn - 5] > TOL2 * (sigma + z[nn - 3]) && z[nn - 2 * pp - 4] > TOL2 * z[nn - 7])) {
        z[4 * n0 - 3] = z[4 * n0 + pp - 3] + sigma;
        st.n0--;
        continue;
      }
      if (z[nn - 9] > TOL2 * sigma && z[nn - 2 * pp - 8] > TOL2 * z[nn - 11]) break;
    }
    // Two eigenvalues from the trailing 2×2, larger first, without cancellation.
    if (z[nn - 3] > z[nn - 7]) {
      const s = z[nn - 3];
      z[nn - 3] = z[nn - 7];
      z[nn - 7] = s;
    }
    if (z[nn - 5] > z[nn - 3] * TOL2) {
      let t = 0.5 * (z[nn - 7] - z[nn - 3] + z[nn - 5]);
      let s = z[nn - 3] * (z[nn - 5] / t);
      s = s <= t ? z[nn - 3] * (z[nn - 5] / (t * (1 + Math.sqrt(1 + s / t)))) : z[nn - 3] * (z[nn - 5] / (t + Math.sqrt(t) * Math.sqrt(t + s)));
      t = z[nn - 7] + (s + z[nn - 5]);
      z[nn - 3] *= z[nn - 7] / t;
      z[nn - 7] = t;
    }
    z[4 * n0 - 7] = z[nn - 7] + sigma;
    z[4 * n0 - 3] = z[nn - 3] + sigma;
    st.n0 -= 2;
  }
  if (st.pp === 2) st.pp = 0;
  const { i0, n0, pp } = st;
  // After a failure or a deflation, reverse the block if its bottom end has become the larger one.
  if ((st.dmin <= 0 || n0 < n0in) && CBIAS * z[4 * i0 + pp - 3] < z[4 * n0 + pp - 3]) {
    reverse(z, i0, n0);
    if (n0 - i0 <= 4) {
      z[4 * n0 + pp - 1] = z[4 * i0 + pp - 1];
      z[4 * n0 - pp] = z[4 * i0 - pp];
    }
    st.dmin2 = Math.min(st.dmin2, z[4 * n0 + pp - 1]);
    z[4 * n0 + pp - 1] = Math.min(z[4 * n0 + pp - 1], z[4 * i0 + pp - 1], z[4 * i0 + pp + 3]);
    z[4 * n0 - pp] = Math.min(z[4 * n0 - pp], z[4 * i0 - pp], z[4 * i0 - pp + 4]);
    st.qmax = Math.max(st.qmax, z[4 * i0 + pp - 3], z[4 * i0 + pp + 1]);
    st.dmin = -0;
  }
  chooseShift(z, st, n0in);
  // Sweep until d_min ≥ 0: a failed sweep (the shift passed an eigenvalue) is retried with a smaller one.
  for (;;) {
    sweep(z, st);
    if (st.dmin >= 0 && st.dmin1 > 0) break;
    if (st.dmin < 0 && st.dmin1 > 0 && z[4 * (n0 - 1) - pp] < TOL * (sigma + st.dn1) && Math.abs(st.dn) < TOL * sigma) {
      // Converged, hidden only by a slightly negative last d: accept it with the last off-diagonal zeroed.
      z[4 * (n0 - 1) - pp + 2] = 0;
      st.dmin = 0;
      break;
    }
    if (st.dmin < 0) {
      if (st.ttype < -22) st.tau = 0; // failed twice: no shift
      else if (st.dmin1 > 0) {
        // Late failure (only the last d went negative): tau + d_min is an excellent shift.
        st.tau = (st.tau + st.dmin) * (1 - 2 * EPS);
        st.ttype -= 11;
      } else {
        st.tau *= QURTR;
        st.ttype -= 12;
      }
      continue;
    }
    if (Number.isNaN(st.dmin) && st.tau !== 0) {
      st.tau = 0;
      continue;
    }
    // NaN without a shift, or a zero d_min1 (possible underflow): one careful unshifted sweep.
    sweepUnshifted(z, st);
    st.tau = 0;
    break;
  }
  // sigma += tau with the rounding error carried in desig.
  const tau = st.tau;
  let t: number;
  if (tau < sigma) {
    st.desig += tau;
    t = sigma + st.desig;
    st.desig -= t - sigma;
  } else {
    t = sigma + tau;
    st.desig = sigma - (t - tau) + st.desig;
  }
  st.sigma = t;
}

/** Reverses rows i0..n0 of both slot pairs (the e's shift by one row so they stay between the same q's). */
export function reverse(z: Float64Array, i0: number, n0: number): void {
  const ipn4 = 4 * (i0 + n0);
  for (let j4 = 4 * i0; j4 <= 2 * (i0 + n0 - 1); j4 += 4) {
    let t = z[j4 - 3];
    z[j4 - 3] = z[ipn4 - j4 - 3];
    z[ipn4 - j4 - 3] = t;
    t = z[j4 - 2];
    z[j4 - 2] = z[ipn4 - j4 - 2];
    z[ipn4 - j4 - 2] = t;
    t = z[j4 - 1];
    z[j4 - 1] = z[ipn4 - j4 - 5];
    z[ipn4 - j4 - 5] = t;
    t = z[j4];
    z[j4] = z[ipn4 - j4 - 4];
    z[ipn4 - j4 - 4] = t;
  }
}
