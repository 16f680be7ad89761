// The sweeps of the dqds iteration (dqdsStep.ts): one shifted dqds sweep (LAPACK dlasq5) and one guarded unshifted
// dqd sweep (dlasq6) over the 1-based qd array z, reading the slot pair pp and writing the other.
//
// The shifted sweep is a division latency chain through d (an add, a division and a subtraction per row, about 19
// cycles at 3.6 GHz on Zen 4), and anything that stalls the chain shows up directly in the time. A running minimum
// with Math.min did: V8 compiles it to compare-and-branch, and whether a d is a new d_min is close to a coin toss in
// real sweeps (the outcome changes from one row to the next at about 40% of rows), so mispredicted branches kept
// flushing the division in flight. Sweeps over fresh data ran at about 12.5 ns per row, and only repeating a sweep
// over the same data (as a micro-benchmark does, training the predictor) brought that to 6.5 ns. With the
// branch-free minimum below: 7.5 ns per row on fresh data; all of dqds on the LLaMA-2-7B-shaped bidiagonals 11.6 →
// 7.2 ns per row update, bit-identical. The minimum of the new e's keeps Math.min: a new e_min is rare (about 2% of
// rows), so its branch predicts well.

import type { QdState } from './dqdsStep';

const EPS = 2.220446049250313e-16;
/** Underflow guard of the unshifted sweep (LAPACK's safe minimum). */
const SAFMIN = 2.2250738585072014e-308;

/** Scratch for minNoBranch(): [a, b]. */
const pick = new Float64Array(2);

/**
 * min(a, b) without a branch: the comparison becomes an index (0 or 1) into a two-slot buffer. Equal to Math.min
 * whenever b is not −0 and neither is NaN (Math.min(+0, −0) is −0, and a NaN b would be dropped here); the sweeps
 * below call it only where that holds, or fix the NaN up afterwards.
 */
export function minNoBranch(a: number, b: number): number {
  pick[0] = a;
  pick[1] = b;
  return pick[+(b < a)];
}

/**
 * One dqds(tau) sweep over rows i0..n0 (dlasq5, IEEE path): q̂_k = d + e_k, t = q_{k+1}/q̂_k, ê_k = e_k·t,
 * d ← d·t − tau, q̂_n0 = d. No test inside the loop: a negative d shows up in d_min (an infinity or NaN too) and the
 * caller retries. Records d_min, the last three d's and the minimum of the new e's (in slot 4·n0 − pp).
 */
export function sweep(z: Float64Array, st: QdState): void {
  const { i0, n0, pp, sigma } = st;
  st.sweeps++;
  st.steps += n0 - i0 + 2;
  // A shift below the rounding of sigma changes nothing but can leave tiny negative d's: treat it as zero, and then
  // flush d's below that rounding to zero (LAPACK 3.4's dlasq5).
  const dthresh = EPS * (sigma + st.tau);
  if (st.tau < dthresh * 0.5) st.tau = 0;
  const tau = st.tau;
  // Offsets from the q slot b = 4k − 3 of row k: read e_k and q_{k+1}, write q̂_k and ê_k.
  const er = 2 + pp;
  const qw = 1 - pp;
  const qn = 4 + pp;
  const ew = 3 - pp;
  let b = 4 * i0 - 3;
  let emin = z[b + 4 + pp];
  let d = z[b + pp] - tau;
  let dmin = d;
  const last = 4 * (n0 - 3) - 3;
  // Each common case gets its own loop with constant offsets. With tau ≠ 0 no d is −0 (x − tau is −0 only for
  // x = −0, tau = +0), so minNoBranch() is exact there, NaN aside. d' = (d·q_{k+1})/q̂ − tau takes the
  // multiplication off the chain (it runs beside d + e_k), and ê_k gets a division of its own that overlaps: about
  // 9% faster than d·(q_{k+1}/q̂) with the same two roundings. (d·q_{k+1} could only underflow with σ²/σ_max² near
  // 1e−280, where the squares have lost their relative accuracy anyway.)
  if (tau !== 0 && pp === 0) {
    for (; b <= last; b += 4) {
      const e = z[b + 2];
      const q1 = z[b + 4];
      const qh = d + e;
      const dq = d * q1;
      z[b + 1] = qh;
      d = dq / qh - tau;
      const en = e * (q1 / qh);
      z[b + 3] = en;
      dmin = minNoBranch(dmin, d);
      emin = Math.min(emin, en);
    }
  } else if (tau !== 0) {
    for (; b <= last; b += 4) {
      const e = z[b + 3];
      const q1 = z[b + 5];
      const qh = d + e;
      const dq = d * q1;
      z[b] = qh;
      d = dq / qh - tau;
      const en = e * (q1 / qh);
      z[b + 2] = en;
      dmin = minNoBranch(dmin, d);
      emin = Math.min(emin, en);
    }
  } else if (dthresh > 0 && pp === 0) {
    // Unshifted: a d below dthresh > 0 (−0 included) is flushed to +0, so no d here is −0: minNoBranch() is exact.
    for (; b <= last; b += 4) {
      const e = z[b + 2];
      const qh = d + e;
      z[b + 1] = qh;
      const t = z[b + 4] / qh;
      d = d * t;
      if (d < dthresh) d = 0;
      dmin = minNoBranch(dmin, d);
      const en = e * t;
      z[b + 3] = en;
      emin = Math.min(emin, en);
    }
  } else if (dthresh > 0) {
    for (; b <= last; b += 4) {
      const e = z[b + 3];
      const qh = d + e;
      z[b] = qh;
      const t = z[b + 5] / qh;
      d = d * t;
      if (d < dthresh) d = 0;
      dmin = minNoBranch(dmin, d);
      const en = e * t;
      z[b + 2] = en;
      emin = Math.min(emin, en);
    }
  } else {
    // sigma = tau = 0 (the first sweep of a block without a Gerschgorin shift): a d may be −0, so Math.min.
    for (; b <= last; b += 4) {
      const qh = d + z[b + er];
      z[b + qw] = qh;
      const t = z[b + qn] / qh;
      d = d * t;
      if (d < dthresh) d = 0;
      dmin = Math.min(dmin, d);
      const en = z[b + er] * t;
      z[b + ew] = en;
      emin = Math.min(emin, en);
    }
  }
  // Math.min's NaN, which minNoBranch() drops: a NaN d stays NaN to the end of the sweep (every later d is computed
  // from it), so the last one shows whether there was one.
  if (d !== d) dmin = d;
  // The last two rows unrolled, to record d_{n0−1} and d_n0.
  const dn2 = d;
  st.dmin2 = dmin;
  let qh = dn2 + z[b + er];
  z[b + qw] = qh;
  z[b + ew] = z[b + qn] * (z[b + er] / qh);
  const dn1 = z[b + qn] * (dn2 / qh) - tau;
  dmin = Math.min(dmin, dn1);
  st.dmin1 = dmin;
  b += 4;
  qh = dn1 + z[b + er];
  z[b + qw] = qh;
  z[b + ew] = z[b + qn] * (z[b + er] / qh);
  const dn = z[b + qn] * (dn1 / qh) - tau;
  dmin = Math.min(dmin, dn);
  z[b + 4 + qw] = dn;
  z[4 * n0 - pp] = emin;
  st.dmin = dmin;
  st.dn = dn;
  st.dn1 = dn1;
  st.dn2 = dn2;
}

/** One unshifted dqd sweep guarded against underflow (dlasq6), used when the shifted one met a zero or a NaN. */
export function sweepUnshifted(z: Float64Array, st: QdState): void {
  const { i0, n0, pp } = st;
  st.sweeps++;
  st.steps += n0 - i0 + 2;
  const er = 2 + pp;
  const qw = 1 - pp;
  const qn = 4 + pp;
  const ew = 3 - pp;
  let b = 4 * i0 - 3;
  let emin = z[b + 4 + pp];
  let d = z[b + pp];
  let dmin = d;
  let dn2 = 0;
  let dn1 = 0;
  for (let k = i0; k < n0; k++, b += 4) {
    if (k === n0 - 2) {
      dn2 = d;
      st.dmin2 = dmin;
    }
    const qh = d + z[b + er];
    z[b + qw] = qh;
    const qnext = z[b + qn];
    if (qh === 0) {
      // Only when d and e_k both underflowed: restart the recurrence at the next q.
      z[b + ew] = 0;
      d = qnext;
      dmin = d;
      emin = 0;
    } else if (SAFMIN * qnext < qh && SAFMIN * qh < qnext) {
      const t = qnext / qh;
      z[b + ew] = z[b + er] * t;
      d *= t;
    } else {
      z[b + ew] = qnext * (z[b + er] / qh);
      d = qnext * (d / qh);
    }
    dmin = Math.min(dmin, d);
    if (k < n0 - 2) emin = Math.min(emin, z[b + ew]);
    if (k === n0 - 2) {
      dn1 = d;
      st.dmin1 = dmin;
    }
  }
  z[b + qw] = d;
  z[4 * n0 - pp] = emin;
  st.dmin = dmin;
  st.dn = d;
  st.dn1 = dn1;
  st.dn2 = dn2;
}
