// The least-squares MoRA matrix M for a dense ΔW: argmin_M ‖ΔW − ΔW(M)‖_F for the operator mora.ts implements.
//
// ΔW(M) is linear in M and row o of ΔW only involves row a of M (type 1: a = o % r̂; type 6: a = (o % L) % r̂ with
// L = chunks·r̂), so the problem splits into r̂ independent small ones, each solved exactly from its normal equations:
//
// - type 6, in ≥ r̂: core row q = c·r̂ + a is row a of M·R_c laid over padded columns c·r̂ … c·r̂ + r̂ − 1 (mod in).
//   R_c acts on pairs (j, j + h) as Q = [[cos, sin], [−sin, cos]] (scaled by the float32 cos² + sin² = ρ), so
//   QᵀQ = ρ·I and each pair of M's row is Σ n_q·Qᵀz_q / Σ n_q·ρ over the chunks, where z_q is the mean of the n_q
//   output rows that repeat core row q (tiling; rows past `out` are truncated and observe nothing).
// - type 1, in > r̂: row a's observations are the mean ȳ of output rows o ≡ a (mod r̂). Padded position p feeds column
//   p % in through M[a, p % r̂]: columns below pad = r̂ − s (s = in % r̂) see M[a, col] + M[a, col + s], the rest one
//   entry. The normal matrix is chunks·I plus ones between k and k + s, i.e. tridiagonal along each chain
//   k0, k0 + s, k0 + 2s, … (k0 < s), positive definite for chunks ≥ 2; the Thomas algorithm solves it.
// - both types, in ≤ r̂ (one chunk, R_0 = I): column col sums M[a, k] over k ≡ col (mod in), an underdetermined
//   system; the minimum-norm solution shares the mean equally, M[a, k] = ȳ[k % in] / #{k' < r̂ : k' ≡ k}.
// Rows of M that no output row observes (out < r̂) are left at zero, also the minimum-norm choice.
import { moraChunks, moraDeltaW, moraRopeTables, type MoraType } from './mora';

/** Σ of the output rows o ≡ q (mod period), o < out, into `acc` [in]; returns how many there were. */
function sumRows(dW: Float64Array, outF: number, inF: number, q: number, period: number, acc: Float64Array): number {
  acc.fill(0);
  let n = 0;
  for (let o = q; o < outF; o += period, n++) {
    const wo = o * inF;
    for (let i = 0; i < inF; i++) acc[i] += dW[wo + i];
  }
  return n;
}

/** in ≤ r̂ (either type): the minimum-norm M, sharing each column's mean among the M entries folded onto it. */
function fitFolded(dW: Float64Array, inF: number, outF: number, rHat: number): Float64Array {
  const M = new Float64Array(rHat * rHat);
  const share = new Float64Array(inF); // #{k < r̂ : k % in == col}
  for (let k = 0; k < rHat; k++) share[k % inF]++;
  const y = new Float64Array(inF);
  for (let a = 0; a < rHat; a++) {
    const n = sumRows(dW, outF, inF, a, rHat, y);
    if (n === 0) continue;
    for (let k = 0; k < rHat; k++) M[a * rHat + k] = y[k % inF] / (n * share[k % inF]);
  }
  return M;
}

/** Type 1, in > r̂: Sᵀȳ per row of M, then the tridiagonal normal equations along each chain of step s = in % r̂. */
function fitSharing(dW: Float64Array, inF: number, outF: number, rHat: number): Float64Array {
  const chunks = moraChunks(inF, rHat);
  const s = inF % rHat;
  const M = new Float64Array(rHat * rHat);
  // Thomas algorithm for diag = chunks, off-diagonal = 1: the forward multipliers depend only on the position in a
  // chain, so they are shared by every chain and every row. Chains are at most ceil(r̂ / s) long.
  const maxLen = s === 0 ? 1 : Math.ceil(rHat / s);
  const cp = new Float64Array(maxLen); // 1 / pivot_i
  let pivot = chunks;
  for (let i = 0; i < maxLen; i++) {
    cp[i] = 1 / pivot;
    pivot = chunks - cp[i];
  }
  const y = new Float64Array(inF);
  const b = new Float64Array(rHat);
  const xp = new Float64Array(maxLen);
  for (let a = 0; a < rHat; a++) {
    const n = sumRows(dW, outF, inF, a, rHat, y);
    if (n === 0) continue;
    // b = Sᵀȳ: M[a, k] is seen at padded positions k + c·r̂, column (k + c·r̂) % in.
    for (let k = 0; k < rHat; k++) {
      let acc = 0;
      for (let c = 0; c < chunks; c++) acc += y[(k + c * rHat) % inF];
      b[k] = acc / n;
    }
    const mo = a * rHat;
    if (s === 0) {
      for (let k = 0; k < rHat; k++) M[mo + k] = b[k] / chunks;
      continue;
    }
    for (let k0 = 0; k0 < s; k0++) {
      const len = Math.ceil((rHat - k0) / s);
      for (let i = 0; i < len; i++) xp[i] = (b[k0 + i * s] - (i > 0 ? xp[i - 1] : 0)) * cp[i];
      let next = 0;
      for (let i = len - 1; i >= 0; i--) {
        next = xp[i] - (i < len - 1 ? cp[i] * next : 0);
        M[mo + k0 + i * s] = next;
      }
    }
  }
  return M;
}

/** Type 6, in ≥ r̂: un-rotate every observed core row with its chunk's RoPE rotation and pool the observations. */
function fitRope(dW: Float64Array, inF: number, outF: number, rHat: number): Float64Array {
  const chunks = moraChunks(inF, rHat);
  const L = chunks * rHat;
  const h = rHat / 2;
  const { cos, sin } = moraRopeTables(rHat, chunks);
  const M = new Float64Array(rHat * rHat);
  const den = new Float64Array(rHat * h); // Σ n_q·ρ per (a, j)
  const y = new Float64Array(inF);
  for (let c = 0; c < chunks; c++) {
    const base = c * rHat;
    for (let a = 0; a < rHat; a++) {
      const n = sumRows(dW, outF, inF, base + a, L, y);
      if (n === 0) continue;
      const mo = a * rHat;
      for (let j = 0; j < h; j++) {
        const co = cos[c * h + j];
        const si = sin[c * h + j];
        const zl = y[(base + j) % inF];
        const zh = y[(base + j + h) % inF];
        M[mo + j] += co * zl - si * zh;
        M[mo + j + h] += si * zl + co * zh;
        den[a * h + j] += n * (co * co + si * si);
      }
    }
  }
  for (let a = 0; a < rHat; a++) {
    for (let j = 0; j < h; j++) {
      const d = den[a * h + j];
      M[a * rHat + j] = d > 0 ? M[a * rHat + j] / d : 0;
      M[a * rHat + j + h] = d > 0 ? M[a * rHat + j + h] / d : 0;
    }
  }
  return M;
}

/** Least-squares M [r̂, r̂] (float64) for ΔW [out, in] (row-major float64, nn.Linear orientation). */
export function moraFit(dW: Float64Array, inF: number, outF: number, rHat: number, type: MoraType): Float64Array {
  if (dW.length !== outF * inF) throw new RangeError(`moraFit: ΔW has ${dW.length} values, expected ${outF}×${inF}`);
  if (inF <= rHat) return fitFolded(dW, inF, outF, rHat);
  return type === 1 ? fitSharing(dW, inF, outF, rHat) : fitRope(dW, inF, outF, rHat);
}

/**
 * ‖ΔW − ΔW(M)‖_F for M as stored (float32 after the adapter dtype's rounding), through the forward code itself. Rows
 * at and past `produced` (r̂ for type 1, chunks·r̂ for type 6) repeat the first ones (tiling), so only those are formed
 * and the sum reads row o % produced for row o: the same values in the same order as with the full ΔW(M).
 */
export function moraResidual(dW: Float64Array, M: Float32Array, rHat: number, inF: number, outF: number, type: MoraType): number {
  const produced = type === 1 ? rHat : moraChunks(inF, rHat) * rHat;
  const fit = moraDeltaW(M, rHat, inF, Math.min(outF, produced), type);
  let sum = 0;
  for (let o = 0; o < outF; o++) {
    const wo = o * inF;
    const fo = (o % produced) * inF;
    for (let i = 0; i < inF; i++) {
      const d = dW[wo + i] - fit[fo + i];
      sum += d * d;
    }
  }
  return Math.sqrt(sum);
}
