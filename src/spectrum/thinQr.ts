// Thin Householder QR of the tall, skinny blocks of a randomized SVD (m×l sketches with l = k + oversampling ≪ m).
// factor.ts's qr works on the row-major block, where every inner loop runs along a row of only l values; here the
// block is transposed first, so the reflector, its application and the accumulation of Q all run along contiguous
// columns of length m (≈ 3× faster at 2048×26). Same reflectors (householder.ts, LAPACK dlarfg), same Q = H₀…H_{l−1}·I.

import { dotFrom, reflector } from './householder';

export interface ThinQr {
  q: Float64Array; // [m, l] row-major, orthonormal columns
  r: Float64Array; // [l, l] row-major, upper triangular; A = Q·R
}

/** QR of A [m, l] (row-major, m ≥ l). A zero column gets the identity reflector (R's diagonal is 0 there). */
export function thinQr(a: Float64Array, m: number, l: number): ThinQr {
  if (a.length !== m * l || m < l) throw new RangeError(`thinQr: ${a.length} values for a ${m}×${l} block (m ≥ l)`);
  // g = Aᵀ [l, m]: row j is column j of A; row k's tail [k, m) becomes the reflector u_k (u_k[k] = 1).
  const g = new Float64Array(l * m);
  for (let i = 0; i < m; i++) for (let j = 0; j < l; j++) g[j * m + i] = a[i * l + j];
  const tau = new Float64Array(l);
  const r = new Float64Array(l * l);
  for (let k = 0; k < l; k++) {
    const u = g.subarray(k * m, (k + 1) * m);
    const h = reflector(u, k, m);
    tau[k] = h.tau;
    r[k * l + k] = h.s;
    if (h.tau !== 0) {
      // H_k = I − τ·u·uᵀ on the remaining columns.
      for (let j = k + 1; j < l; j++) {
        const gj = j * m;
        const w = h.tau * dotFrom(g, gj, u, k, m);
        if (w === 0) continue;
        for (let i = k; i < m; i++) g[gj + i] -= w * u[i];
      }
    }
    // Entries above the diagonal are final once H_k has been applied (later reflectors start below row k).
    for (let j = k + 1; j < l; j++) r[k * l + j] = g[j * m + k];
  }
  // Qᵀ [l, m]: column j of Q is e_j until H_j reaches it, so H_k (back to front) only touches columns j ≥ k.
  const qt = new Float64Array(l * m);
  for (let j = 0; j < l; j++) qt[j * m + j] = 1;
  for (let k = l - 1; k >= 0; k--) {
    if (tau[k] === 0) continue;
    const u = g.subarray(k * m, (k + 1) * m);
    for (let j = k; j < l; j++) {
      const qj = j * m;
      const w = tau[k] * dotFrom(qt, qj, u, k, m);
      if (w === 0) continue;
      for (let i = k; i < m; i++) qt[qj + i] -= w * u[i];
    }
  }
  const q = new Float64Array(m * l);
  for (let j = 0; j < l; j++) for (let i = 0; i < m; i++) q[i * l + j] = qt[j * m + i];
  return { q, r };
}
