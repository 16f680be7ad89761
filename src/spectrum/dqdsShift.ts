// The shift of one dqds sweep (dqds.ts), after LAPACK dlasq4 (Parlett & Marques 2000, "An implementation of the dqds
// algorithm"). A shift just below the smallest eigenvalue λ_min of the unreduced block makes the last off-diagonal
// converge quadratically; one above it makes the sweep fail (a negative d) and costs a retry. dlasq4 estimates λ_min
// from what the previous sweep left behind: d_min (an upper bound on λ_min) and where it occurred (at the end, next to
// it, two before it, or inside), the last few q and e (a Gerschgorin/Rayleigh-quotient style bound on how far below
// d_min λ_min can lie), and how many eigenvalues deflated since. The twelve cases keep their LAPACK numbers in `ttype`
// because the failure handling in dqdsStep.ts reads them.

import type { QdState } from './dqdsStep';

// LAPACK's constants: a Rayleigh-quotient bound is only trusted while the estimated norm² of the rest is below CNST1;
// CNST2 and CNST3 widen the bounds slightly for safety.
const CNST1 = 0.563;
const CNST2 = 1.01;
const CNST3 = 1.05;
const QURTR = 0.25;
const THIRD = 0.333;
const HALF = 0.5;

/**
 * The tail of dlasq4's Rayleigh-quotient bounds (cases 4 and 5): a2 plus the running products b2·Π z[i4]/z[i4 − 2]
 * for i4 = from, from − 4, … down to `stop`, for as long as they matter, times CNST3; −1 when a ratio exceeds 1
 * (the bound says nothing then, and the caller keeps the shift it has).
 */
function tailBound(z: Float64Array, from: number, stop: number, b2: number, a2: number): number {
  for (let i4 = from; i4 >= stop; i4 -= 4) {
    if (b2 === 0) break;
    const b1 = b2;
    if (z[i4] > z[i4 - 2]) return -1;
    b2 *= z[i4] / z[i4 - 2];
    a2 += b2;
    if (100 * Math.max(b2, b1) < a2 || CNST1 < a2) break;
  }
  return a2 * CNST3;
}

/**
 * Sets st.tau (and st.ttype, st.g) for the next sweep of rows i0..n0 of the 1-based qd array z, whose current values
 * sit in slots 4k − 3 + pp (q_k) and 4k − 1 + pp (e_k); n0in is n0 before this step's deflations.
 */
export function chooseShift(z: Float64Array, st: QdState, n0in: number): void {
  const { i0, n0, pp, dmin, dmin1, dmin2, dn, dn1, dn2 } = st;
  // A non-positive d_min (the initial Gerschgorin shift, or after flipping the array) asks for −d_min itself.
  if (dmin <= 0) {
    st.tau = -dmin;
    st.ttype = -1;
    return;
  }
  const nn = 4 * n0 + pp;
  let s = 0;
  if (n0in === n0) {
    // No eigenvalue deflated in this step.
    if (dmin === dn || dmin === dn1) {
      const b1 = Math.sqrt(z[nn - 3]) * Math.sqrt(z[nn - 5]);
      let b2 = Math.sqrt(z[nn - 7]) * Math.sqrt(z[nn - 9]);
      let a2 = z[nn - 7] + z[nn - 5];
      if (dmin === dn && dmin1 === dn1) {
        // Cases 2 and 3: d_min at the end and d_min1 just before it; bound λ_min from the trailing 2×2 and its gap.
        const gap2 = dmin2 - a2 - dmin2 * QURTR;
        const gap1 = gap2 > 0 && gap2 > b2 ? a2 - dn - (b2 / gap2) * b2 : a2 - dn - (b1 + b2);
        if (gap1 > 0 && gap1 > b1) {
          s = Math.max(dn - (b1 / gap1) * b1, HALF * dmin);
          st.ttype = -2;
        } else {
          s = 0;
          if (dn > b1) s = dn - b1;
          if (a2 > b1 + b2) s = Math.min(s, a2 - (b1 + b2));
          s = Math.max(s, THIRD * dmin);
          st.ttype = -3;
        }
      } else {
        // Case 4: a Rayleigh-quotient residual bound from the decay of the ratios e_k/q_k towards the end.
        st.ttype = -4;
        s = QURTR * dmin;
        let gam: number;
        let np: number;
        if (dmin === dn) {
          gam = dn;
          a2 = 0;
          if (z[nn - 5] > z[nn - 7]) return setTau(st, s);
          b2 = z[nn - 5] / z[nn - 7];
          np = nn - 9;
        } else {
          np = nn - 2 * pp;
          gam = dn1;
          if (z[np - 4] > z[np - 2]) return setTau(st, s);
          a2 = z[np - 4] / z[np - 2];
          if (z[nn - 9] > z[nn - 11]) return setTau(st, s);
          b2 = z[nn - 9] / z[nn - 11];
          np = nn - 13;
        }
        a2 = tailBound(z, np, 4 * i0 - 1 + pp, b2, a2 + b2);
        if (a2 < 0) return setTau(st, s);
        if (a2 < CNST1) s = (gam * (1 - Math.sqrt(a2))) / (1 + a2);
      }
    } else if (dmin === dn2) {
      // Case 5: d_min two before the end.
      st.ttype = -5;
      s = QURTR * dmin;
      const np = nn - 2 * pp;
      const b1 = z[np - 2];
      let b2 = z[np - 6];
      const gam = dn2;
      if (z[np - 8] > b2 || z[np - 4] > b1) return setTau(st, s);
      let a2 = (z[np - 8] / b2) * (1 + z[np - 4] / b1);
      if (n0 - i0 > 2) {
        b2 = z[nn - 13] / z[nn - 15];
        a2 = tailBound(z, nn - 17, 4 * i0 - 1 + pp, b2, a2 + b2);
        if (a2 < 0) return setTau(st, s);
      }
      if (a2 < CNST1) s = (gam * (1 - Math.sqrt(a2))) / (1 + a2);
    } else {
      // Case 6: d_min inside the block says little about λ_min; a fraction of it that grows on repeats.
      if (st.ttype === -6) st.g += THIRD * (1 - st.g);
      else if (st.ttype === -18) st.g = QURTR * THIRD;
      else st.g = QURTR;
      s = st.g * dmin;
      st.ttype = -6;
    }
  } else if (n0in === n0 + 1) {
    // One eigenvalue just deflated: d_min1 and dn1 describe the block that is left.
    if (dmin1 === dn1 && dmin2 === dn2) {
      // Cases 7 and 8.
      st.ttype = -7;
      s = THIRD * dmin1;
      if (z[nn - 5] > z[nn - 7]) return setTau(st, s);
      let b1 = z[nn - 5] / z[nn - 7];
      let b2 = b1;
      if (b2 !== 0) {
        for (let i4 = 4 * n0 - 9 + pp; i4 >= 4 * i0 - 1 + pp; i4 -= 4) {
          const a2 = b1;
          if (z[i4] > z[i4 - 2]) return setTau(st, s);
          b1 *= z[i4] / z[i4 - 2];
          b2 += b1;
          if (100 * Math.max(b1, a2) < b2) break;
        }
      }
      b2 = Math.sqrt(CNST3 * b2);
      const a2 = dmin1 / (1 + b2 * b2);
      const gap2 = HALF * dmin2 - a2;
      if (gap2 > 0 && gap2 > b2 * a2) s = Math.max(s, a2 * (1 - CNST2 * a2 * (b2 / gap2) * b2));
      else {
        s = Math.max(s, a2 * (1 - CNST2 * b2));
        st.ttype = -8;
      }
    } else {
      // Case 9.
      s = dmin1 === dn1 ? HALF * dmin1 : QURTR * dmin1;
      st.ttype = -9;
    }
  } else if (n0in === n0 + 2) {
    // Two eigenvalues deflated: d_min2 and dn2 describe the rest. Cases 10 and 11.
    if (dmin2 === dn2 && 2 * z[nn - 5] < z[nn - 7]) {
      st.ttype = -10;
      s = THIRD * dmin2;
      if (z[nn - 5] > z[nn - 7]) return setTau(st, s);
      let b1 = z[nn - 5] / z[nn - 7];
      let b2 = b1;
      if (b2 !== 0) {
        for (let i4 = 4 * n0 - 9 + pp; i4 >= 4 * i0 - 1 + pp; i4 -= 4) {
          if (z[i4] > z[i4 - 2]) return setTau(st, s);
          b1 *= z[i4] / z[i4 - 2];
          b2 += b1;
          if (100 * b1 < b2) break;
        }
      }
      b2 = Math.sqrt(CNST3 * b2);
      const a2 = dmin2 / (1 + b2 * b2);
      const gap2 = z[nn - 7] + z[nn - 9] - Math.sqrt(z[nn - 11]) * Math.sqrt(z[nn - 9]) - a2;
      s = gap2 > 0 && gap2 > b2 * a2 ? Math.max(s, a2 * (1 - CNST2 * a2 * (b2 / gap2) * b2)) : Math.max(s, a2 * (1 - CNST2 * b2));
    } else {
      s = QURTR * dmin2;
      st.ttype = -11;
    }
  } else {
    // Case 12: more than two deflated, no information.
    s = 0;
    st.ttype = -12;
  }
  setTau(st, s);
}

function setTau(st: QdState, s: number): void {
  st.tau = s;
}
