// Exact singular values of a MoRA update ΔW from its r̂×r̂ matrix M, using the operator structure of
// src/adapters/mora.ts (the kongds/MoRA reference semantics) instead of an SVD of the [out, in] matrix.
//
// Both types factor as ΔW = S·K·P: P pads the input (padded position p reads input column p mod in), K is the core
// (type 1: M·C with C summing chunks; type 6: block-diagonal M·R_c with R_c the RoPE rotation of chunk c), and S
// repeats core rows (output row o reads core row o mod produced). S has disjoint 0/1 columns, so SᵀS = diag(w) with
// w_p = how many output rows read core row p, and σ(ΔW) = σ(diag(√w)·K·P). That small matrix is then split further:
//
// - type 1: K·P = M·C with C [r̂, in] 0/1-valued; identical columns e_j of C collapse into one column √m_j·e_j, so
//   σ(ΔW) = σ(diag(√w)·M·C̃) with C̃ r̂ × (r̂ + #padded columns). Closed form when r̂ divides in and out:
//   σ(ΔW) = √(in·out)/r̂ · σ(M).
// - type 6: chunks that share no input column are independent blocks diag(√w_c)·M·R_c, and R_c is orthogonal, so a
//   chunk with constant weight w contributes √w·σ(M) (closed form: when r̂ divides in and out = t·in, σ(ΔW) is σ(M)
//   repeated in/r̂ times, scaled by √t). Padding couples the last chunk with the first; those chunks (and chunks with
//   a truncation/tiling boundary inside) are solved as one small dense block. A chunk with a tiling boundary alone
//   takes its own SVD, or its Gram eigenproblem when a coupled block already puts the module on that accuracy; in
//   that case σ(M) also comes from the eigenvalues of MᵀM, which the coupled block needs anyway.

import { moraChunks, moraRopeTables, type MoraType } from '../adapters';
import { gramSigma } from './gramBlock';
import { LinalgError, singularValues } from './linalg';
import { ChunkWeights, chunkGram, chunkGroups, coupledBlock, type GramCache, mergeDescending, plainGram, type SigmaPart, weightedRows } from './ropeBlocks';
import { scaledTimesSparse, shareColumnFactor } from './shareKernel';

const EPS = 2.220446049250313e-16;

export interface MoraSpectrum {
  /** Every singular value ΔW can have as nonzero, descending; the remaining min(out, in) − length are exactly 0. */
  sigma: Float64Array;
  /** 'closed-form' when σ is a scaled copy of σ(M); 'structured' when some coupled block needed its own SVD. */
  method: 'closed-form' | 'structured';
  /** Dense SVDs solved (each at most about 2r̂ × 2r̂). */
  blocks: number;
  /**
   * Absolute accuracy of the values: about max(out, in)·eps·σ_max where every block went through a bidiagonal SVD,
   * sqrt(n·eps)·σ_max where a block used its Gram matrix (a coupled block, and then also any chunk with a tiling
   * boundary: gramBlock.ts gramSigma). Use it as the floor of any rank tolerance.
   */
  tolerance: number;
}

function scaled(s: Float64Array, f: number): Float64Array {
  // A loop: TypedArray.from with a map callback is about 10× slower in V8.
  const out = new Float64Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s[i] * f;
  return out;
}

function check(M: ArrayLike<number>, rHat: number, inF: number, outF: number, type: MoraType): void {
  if (type !== 1 && type !== 6) throw new LinalgError('BadShape', `unsupported mora_type ${String(type)}`);
  if (!(Number.isInteger(rHat) && rHat >= 1) || M.length !== rHat * rHat) {
    throw new LinalgError('BadShape', `MoRA M has ${M.length} values, expected ${rHat}×${rHat}`);
  }
  if (type === 6 && rHat % 2 !== 0) throw new LinalgError('BadShape', `MoRA type 6 needs an even r̂, got ${rHat}`);
  if (!(Number.isInteger(inF) && inF >= 1 && Number.isInteger(outF) && outF >= 1)) {
    throw new LinalgError('BadShape', `bad MoRA sizes in=${inF} out=${outF}`);
  }
}

/** How many of `total` output rows read core row p when rows repeat with period `produced`. */
function rowWeight(p: number, total: number, produced: number): number {
  return Math.floor(total / produced) + (p < total % produced ? 1 : 0);
}

/** σ(ΔW) for a MoRA module; M is [r̂, r̂] row-major (nn.Linear layout), ΔW is [out, in]. */
export function moraSingularValues(M: ArrayLike<number>, rHat: number, inF: number, outF: number, type: MoraType): MoraSpectrum {
  check(M, rHat, inF, outF, type);
  return type === 1 ? sharing(M, rHat, inF, outF) : rope(M, rHat, inF, outF);
}

function sharing(M: ArrayLike<number>, r: number, inF: number, outF: number): MoraSpectrum {
  const L = moraChunks(inF, r) * r; // padded input length
  // Column c of C has a 1 in row (p mod r) for every padded position p ≡ c (mod in).
  const single = new Float64Array(r); // m_j: count of columns equal to e_j
  const explicit: number[][] = []; // the other columns, as row lists (a row may repeat)
  for (let c = 0; c < inF; c++) {
    // Most columns have the one position p = c (no padding reaches them): no row list for those.
    if (c + inF >= L) {
      single[c % r]++;
      continue;
    }
    const rows: number[] = [];
    for (let p = c; p < L; p += inF) rows.push(p % r);
    explicit.push(rows);
  }
  const w = new Float64Array(r);
  for (let j = 0; j < r; j++) w[j] = rowWeight(j, outF, r);
  const constW = w.every((x) => x === w[0]);
  if (explicit.length === 0 && constW && single.every((x) => x === single[0])) {
    const sigma = scaled(singularValues(M, r, r), Math.sqrt(w[0] * single[0]));
    return { sigma, method: 'closed-form', blocks: 1, tolerance: Math.max(inF, outF) * EPS * (sigma[0] ?? 0) };
  }
  const rowsKept: number[] = [];
  for (let j = 0; j < r; j++) if (w[j] > 0) rowsKept.push(j);
  const colsSingle: number[] = [];
  for (let j = 0; j < r; j++) if (single[j] > 0) colsSingle.push(j);
  const nc = colsSingle.length + explicit.length;
  // More columns than rows: compress C̃ to an r̂-column factor with the same C̃·C̃ᵀ (same σ, smaller SVD).
  const f = nc > r ? shareColumnFactor(r, single, explicit) : null;
  if (f) {
    const sigma = singularValues(scaledTimesSparse(M, r, rowsKept, w, f), rowsKept.length, r);
    return { sigma, method: 'structured', blocks: 1, tolerance: Math.max(inF, outF) * EPS * (sigma[0] ?? 0) };
  }
  // X = diag(√w)·M·C̃ : [rows, r] x [r, nc] -> [rows, nc]
  const x = new Float64Array(rowsKept.length * nc);
  rowsKept.forEach((a, i) => {
    const sw = Math.sqrt(w[a]);
    const mo = a * r;
    const xo = i * nc;
    colsSingle.forEach((j, t) => (x[xo + t] = sw * Math.sqrt(single[j]) * M[mo + j]));
    explicit.forEach((rows, t) => {
      let s = 0;
      for (const j of rows) s += M[mo + j];
      x[xo + colsSingle.length + t] = sw * s;
    });
  });
  const sigma = singularValues(x, rowsKept.length, nc);
  return { sigma, method: 'structured', blocks: 1, tolerance: Math.max(inF, outF) * EPS * (sigma[0] ?? 0) };
}

function rope(M: ArrayLike<number>, r: number, inF: number, outF: number): MoraSpectrum {
  const chunks = moraChunks(inF, r);
  const wts = new ChunkWeights(r, outF, chunks * r);
  // The rotation tables (chunks·r̂/2 cos/sin pairs) only matter to a coupled block: built on first use.
  let tables: { cos: Float32Array; sin: Float32Array } | null = null;
  const memberLists = chunkGroups(chunks, r, inF, wts);
  const isCoupled = (m: number[]): boolean => m.length > 1 || (m[0] + 1) * r > inF;
  // With a coupled block the module's accuracy is already the Gram route's, so a chunk with a tiling boundary may
  // take that (cheaper) route too without changing the reported tolerance; otherwise it keeps its SVD.
  const viaGram = memberLists.some(isCoupled);
  const grams: GramCache = { plain: null }; // MᵀM, shared by all blocks
  let sigmaM: Float64Array | null = null;
  let tolM = 0; // σ(M)'s own accuracy when it came from the Gram matrix (0: an SVD, covered by the module's eps rule)
  const copies = new Map<number, number>(); // weight w -> how many chunks contribute √w·σ(M)
  const parts: SigmaPart[] = [];
  let blocks = 0;
  let closed = true;
  let tolerance = 0;
  for (const members of memberLists) {
    const c = members[0];
    if (!isCoupled(members)) {
      // An unpadded chunk alone: σ(diag(√w)·M·R_c) = σ(diag(√w)·M).
      const w = wts.constant(c);
      if (w >= 0) {
        if (w === 0) continue;
        if (!sigmaM) {
          if (viaGram) {
            // The module is at the Gram route's accuracy anyway, and the coupled block needs MᵀM: its eigenvalues
            // cost a third of an SVD of M (gramSigma reduces a copy, so the cached Gram stays intact).
            const block = gramSigma(plainGram(M, r, grams), r, r);
            sigmaM = block.sigma;
            tolM = block.tolerance;
          } else sigmaM = singularValues(M, r, r);
          blocks++;
        }
        copies.set(w, (copies.get(w) ?? 0) + 1);
        tolerance = Math.max(tolerance, tolM * Math.sqrt(w));
        continue;
      }
      // The chunk the tiling boundary splits (there is one at most, so its σ is never reused).
      closed = false;
      if (viaGram) {
        const block = gramSigma(chunkGram(M, r, wts, c, grams), r, wts.positive(c));
        parts.push({ s: block.sigma, count: 1 });
        tolerance = Math.max(tolerance, block.tolerance);
      } else {
        parts.push({ s: singularValues(weightedRows(M, r, wts, c), wts.positive(c), r), count: 1 });
      }
      blocks++;
      continue;
    }
    closed = false;
    tables ??= moraRopeTables(r, chunks);
    const block = coupledBlock(M, r, inF, members, wts, tables.cos, tables.sin, grams);
    parts.push({ s: block.sigma, count: 1 });
    tolerance = Math.max(tolerance, block.tolerance);
    blocks++;
  }
  // Chunks of one weight share one scaled copy of σ(M), written count times by the merge.
  for (const [w, count] of copies) parts.push({ s: scaled(sigmaM!, Math.sqrt(w)), count });
  const sigma = mergeDescending(parts);
  tolerance = Math.max(tolerance, Math.max(inF, outF) * EPS * (sigma[0] ?? 0));
  return { sigma, method: closed ? 'closed-form' : 'structured', blocks, tolerance };
}
