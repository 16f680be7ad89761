/**
 * MoRA (arXiv 2405.12130): a square r̂×r̂ matrix M between a non-parametric compressor (in → r̂) and decompressor
 * (r̂ → out). Semantics follow the reference code (kongds/MoRA, peft-mora `LoraLayer._apply_mora` and
 * `Linear.get_delta_weight`) for the two operator pairs this project supports:
 *
 * - type 1 ("sharing", paper Eq. 6): the input, padded to a multiple of r̂, is cut into chunks of r̂ that are summed;
 *   M is applied once; its r̂ outputs are repeated (tiled) and truncated to `out`.
 * - type 6 ("RoPE", paper Eq. 9): the padded input is cut into chunks of r̂; chunk c is rotated like RoPE at position c
 *   (θ_j = 10000^(−2j/r̂), pairs (j, j + r̂/2)); M is applied to every chunk; the outputs are concatenated
 *   (chunks·r̂ values), truncated to `out`, or tiled when shorter than `out`.
 *
 * Padding: the reference appends the input's first `pad = r̂ − in % r̂` columns (`torch.cat([x, x[..., :pad]])`).
 * We index the padded input as `x[p % in]`, which is exactly that whenever pad ≤ in, and extends it cyclically when
 * in < r̂ (where the reference's forward would fail on a reshape, while its get_delta_weight loop uses `i % in_f`).
 *
 * Layouts: M is [r̂, r̂] row-major and acts like torch's `nn.Linear(r̂, r̂).weight` (y = M·u). x is [n, in] and
 * outputs are [n, out], row-major. ΔW is [out, in] (the nn.Linear layout), so ΔW·x equals moraApply(x).
 * Scaling is always 1 for MoRA and M starts at zero, so a fresh adapter leaves the model unchanged.
 */
import { AdapterError } from './errors';

export type MoraType = 1 | 6;

/** r̂ = floor(sqrt((in + out) · r) + 0.5); type 6 rounds down to even (reference: `new_r // 2 * 2`). */
export function moraRank(inF: number, outF: number, r: number, type: MoraType): number {
  if (!(inF > 0 && outF > 0 && r > 0)) throw new AdapterError('RankMismatch', `bad MoRA sizes in=${inF} out=${outF} r=${r}`);
  let rHat = Math.floor(Math.sqrt((inF + outF) * r) + 0.5);
  if (type === 6) rHat = Math.floor(rHat / 2) * 2;
  if (rHat < 1) throw new AdapterError('RankMismatch', `MoRA type ${type} needs r̂ ≥ 2, got ${rHat} (in=${inF} out=${outF} r=${r})`);
  return rHat;
}

/** Number of r̂-sized input chunks after padding: ceil(in / r̂) (the reference's `sum_inter` / `rb1`). */
export function moraChunks(inF: number, rHat: number): number {
  return Math.ceil(inF / rHat);
}

/** Number of trainable parameters of one MoRA module. */
export function moraParamCount(rHat: number): number {
  return rHat * rHat;
}

/**
 * RoPE tables for type 6, computed in float32 steps like the reference (`inv_freq = 1 / 10000^(arange(0, r̂, 2)/r̂)`,
 * `freqs = outer(arange(chunks), inv_freq)`). cos/sin are [chunks, r̂/2]; column j serves both j and j + r̂/2.
 */
export function moraRopeTables(rHat: number, chunks: number): { cos: Float32Array; sin: Float32Array } {
  const h = rHat / 2;
  const cos = new Float32Array(chunks * h);
  const sin = new Float32Array(chunks * h);
  for (let j = 0; j < h; j++) {
    const invFreq = Math.fround(1 / Math.fround(Math.pow(10000, Math.fround((2 * j) / rHat))));
    for (let c = 0; c < chunks; c++) {
      const angle = Math.fround(c * invFreq);
      cos[c * h + j] = Math.cos(angle);
      sin[c * h + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

function check(M: Float32Array, rHat: number, inF: number, outF: number, type: MoraType): void {
  if (type !== 1 && type !== 6) throw new AdapterError('ConfigInvalid', `unsupported mora_type ${String(type)} (1 or 6)`);
  if (!(Number.isInteger(rHat) && rHat >= 1)) throw new AdapterError('RankMismatch', `bad MoRA r̂ ${rHat}`);
  if (type === 6 && rHat % 2 !== 0) throw new AdapterError('RankMismatch', `MoRA type 6 needs an even r̂, got ${rHat}`);
  if (M.length !== rHat * rHat) throw new AdapterError('ShapeMismatch', `M has ${M.length} values, expected ${rHat}×${rHat}`);
  if (!(inF >= 1 && outF >= 1)) throw new AdapterError('ShapeMismatch', `bad MoRA sizes in=${inF} out=${outF}`);
}

/**
 * The compressor. Type 1: [n, in] -> [n, r̂] (sum of padded chunks). Type 6: [n, in] -> [n · chunks, r̂]
 * (each padded chunk rotated at its position). Exposed so a trainer can form dL/dM = Σ gᵀ·u without ΔW.
 */
export function moraCompress(x: Float32Array, n: number, inF: number, rHat: number, type: MoraType): Float32Array {
  const chunks = moraChunks(inF, rHat);
  const L = chunks * rHat; // padded input length
  if (type === 1) {
    const u = new Float32Array(n * rHat);
    const acc = new Float64Array(rHat);
    for (let i = 0; i < n; i++) {
      acc.fill(0);
      const xo = i * inF;
      for (let p = 0; p < L; p++) acc[p % rHat] += x[xo + (p % inF)];
      u.set(acc, i * rHat);
    }
    return u;
  }
  const h = rHat / 2;
  const { cos, sin } = moraRopeTables(rHat, chunks);
  const u = new Float32Array(n * chunks * rHat);
  for (let i = 0; i < n; i++) {
    const xo = i * inF;
    for (let c = 0; c < chunks; c++) {
      const base = c * rHat; // padded position of this chunk's first value
      const uo = (i * chunks + c) * rHat;
      for (let j = 0; j < h; j++) {
        const lo = x[xo + ((base + j) % inF)];
        const hi = x[xo + ((base + j + h) % inF)];
        const co = cos[c * h + j];
        const si = sin[c * h + j];
        // rotate_half: [lo, hi] -> [lo·cos − hi·sin, hi·cos + lo·sin]
        u[uo + j] = lo * co - hi * si;
        u[uo + j + h] = hi * co + lo * si;
      }
    }
  }
  return u;
}

/** y = M·u for each row: [rows, r̂] x [r̂, r̂]ᵀ -> [rows, r̂]. */
export function moraMix(M: Float32Array, rHat: number, u: Float32Array, rows: number): Float32Array {
  const y = new Float32Array(rows * rHat);
  for (let i = 0; i < rows; i++) {
    const uo = i * rHat;
    for (let a = 0; a < rHat; a++) {
      const mo = a * rHat;
      let s = 0;
      for (let k = 0; k < rHat; k++) s += M[mo + k] * u[uo + k];
      y[uo + a] = s;
    }
  }
  return y;
}

/**
 * The decompressor. Type 1: [n, r̂] -> [n, out], out[o] = y[o % r̂]. Type 6: [n · chunks, r̂] -> [n, out],
 * out[o] = concat(y)[o % (chunks · r̂)] (truncation when out ≤ chunks·r̂, tiling otherwise).
 */
export function moraExpand(y: Float32Array, n: number, inF: number, outF: number, rHat: number, type: MoraType): Float32Array {
  const produced = type === 1 ? rHat : moraChunks(inF, rHat) * rHat;
  const out = new Float32Array(n * outF);
  for (let i = 0; i < n; i++) {
    const yo = i * produced;
    const oo = i * outF;
    for (let o = 0; o < outF; o++) out[oo + o] = y[yo + (o % produced)];
  }
  return out;
}

/** Adjoint of moraExpand (gradient w.r.t. y): [n, out] -> the shape moraExpand takes, summing tiled copies. */
export function moraExpandAdjoint(g: Float32Array, n: number, inF: number, outF: number, rHat: number, type: MoraType): Float32Array {
  const produced = type === 1 ? rHat : moraChunks(inF, rHat) * rHat;
  const gy = new Float32Array(n * produced);
  for (let i = 0; i < n; i++) {
    const yo = i * produced;
    const go = i * outF;
    for (let o = 0; o < outF; o++) gy[yo + (o % produced)] += g[go + o];
  }
  return gy;
}

/** The MoRA forward operator without forming ΔW: [n, in] -> [n, out]. */
export function moraApply(
  M: Float32Array,
  rHat: number,
  inF: number,
  outF: number,
  type: MoraType,
  x: Float32Array,
  n: number,
): Float32Array {
  check(M, rHat, inF, outF, type);
  if (x.length !== n * inF) throw new AdapterError('ShapeMismatch', `x has ${x.length} values, expected ${n}×${inF}`);
  const u = moraCompress(x, n, inF, rHat, type);
  const rows = type === 1 ? n : n * moraChunks(inF, rHat);
  return moraExpand(moraMix(M, rHat, u, rows), n, inF, outF, rHat, type);
}

/**
 * Type 1's ΔW before tiling, the "core" [r̂, in] in float64: padded position p feeds column p % in through M's
 * column p % r̂ (the reference's `w[:, i % in_f] += aw[:, i % r]` loop). Row o of ΔW is core row o % r̂.
 */
export function moraSharingCore(M: Float32Array, rHat: number, inF: number): Float64Array {
  const L = moraChunks(inF, rHat) * rHat;
  const core = new Float64Array(rHat * inF);
  for (let p = 0; p < L; p++) {
    const col = p % inF;
    const k = p % rHat;
    for (let a = 0; a < rHat; a++) core[a * inF + col] += M[a * rHat + k];
  }
  return core;
}

/**
 * ΔW [out, in] of the same operator, built directly (the reference applies the operator to an identity matrix).
 * Row o of ΔW is row (o % produced) of the "core" matrix, where produced = r̂ (type 1) or chunks·r̂ (type 6).
 */
export function moraDeltaW(M: Float32Array, rHat: number, inF: number, outF: number, type: MoraType): Float32Array {
  check(M, rHat, inF, outF, type);
  const chunks = moraChunks(inF, rHat);
  const L = chunks * rHat;
  const dW = new Float32Array(outF * inF);
  let produced: number;
  if (type === 1) {
    produced = rHat;
    dW.set(moraSharingCore(M, rHat, inF).subarray(0, Math.min(outF, rHat) * inF));
  } else {
    // core [chunks·r̂, in], block-diagonal in padded coordinates: block c = M·R_c, where R_c rotates chunk c.
    // (M·R_c)[a, j] = M[a,j]·cos + M[a,j+h]·sin for j < h, and M[a,j]·cos − M[a,j−h]·sin for j ≥ h.
    produced = L;
    const h = rHat / 2;
    const { cos, sin } = moraRopeTables(rHat, chunks);
    const rowsNeeded = Math.min(outF, L);
    for (let c = 0; c < chunks && c * rHat < rowsNeeded; c++) {
      const base = c * rHat;
      const aEnd = Math.min(rHat, rowsNeeded - base);
      for (let a = 0; a < aEnd; a++) {
        const row = (base + a) * inF;
        const mo = a * rHat;
        for (let j = 0; j < h; j++) {
          const co = cos[c * h + j];
          const si = sin[c * h + j];
          dW[row + ((base + j) % inF)] += M[mo + j] * co + M[mo + j + h] * si;
          dW[row + ((base + j + h) % inF)] += M[mo + j + h] * co - M[mo + j] * si;
        }
      }
    }
  }
  // Tiling: rows at and beyond `produced` repeat the first `produced` rows.
  for (let o = produced; o < outF; o++) dW.copyWithin(o * inF, (o % produced) * inF, (o % produced) * inF + inF);
  return dW;
}
