// Pieces of the MoRA type 6 Gram-matrix route (moraSpectrum.ts): the weighted Gram Mᵀ·diag(w)·M through the dense
// kernels, the RoPE rotation of a Gram block, a reusable scratch buffer for the assembled matrix, and σ from a Gram
// matrix's eigenvalues with the one tolerance rule every Gram-route block shares.

import { denseKernels } from './denseKernels';
import { tridiagonalEigenvalues } from './linalg';
import { tridiagonalEigenvaluesPwk } from './tridiagEigen';
import { tridiagonalizeBlocked } from './tridiagKernel';

const EPS = 2.220446049250313e-16;
const TILE = 16; // weightedGram's mirror tile: 16 rows of 16 doubles stay in L1

let scratchBuf = new Float64Array(0);

/**
 * A zeroed buffer of n values reused across calls on this thread: the coupled blocks' Gram matrices are megabytes,
 * and a fresh allocation each time costs page faults and collector work comparable to the arithmetic.
 */
export function scratch(n: number): Float64Array {
  if (scratchBuf.length < n) scratchBuf = new Float64Array(n);
  const view = scratchBuf.subarray(0, n);
  view.fill(0);
  return view;
}

/**
 * Mᵀ diag(w) M for M [k, r] (the first k rows; k defaults to r): [r, k] x [k] x [k, r] -> [r, r], through the
 * register-blocked kernel (lower triangle), mirrored into the upper triangle unless `lowerOnly` (a Gram that only
 * gramSigma reads, which reads the lower triangle; the upper is then 0).
 */
export function weightedGram(M: ArrayLike<number>, r: number, w: ArrayLike<number>, k = r, lowerOnly = false): Float64Array {
  const packLen = Math.ceil(r / 4) * 4 * k;
  // M's first k rows and the negated weights go into the kernels' buffers too, so that the packing runs in the
  // kernels (WASM where available): the JS packStrided loops took ≈ 0.3 ms of a 348-wide Gram's ≈ 3 ms.
  const lengths = [r * r, packLen, packLen, k * r, k];
  const kern = denseKernels(lengths);
  const [g, pa, pb, m, negW] = kern.buffers(lengths, 4); // only g needs zeros: the others are written in full below
  // g −= Ā·B̄ with Ā(i, p) = −w_p·M(p, i) and B̄(p, j) = M(p, j); float32 → float64 is exact, so the packed values
  // are the same as when packing straight from M.
  if (M instanceof Float64Array || M instanceof Float32Array) m.set(M.subarray(0, k * r));
  else for (let i = 0; i < k * r; i++) m[i] = M[i];
  for (let p = 0; p < k; p++) negW[p] = -w[p];
  kern.pack(pa, r, k, 0, k, m, 0, 1, r, negW);
  kern.pack(pb, r, k, 0, k, m, 0, 1, r);
  kern.gemmSub(g, 0, r, r, r, k, pa, pb, true);
  // Copy out of the kernels' buffers (the next reduction reuses them), mirroring the lower triangle in TILE×TILE
  // tiles: a plain column-order mirror writes one value per cache line and costs more than the copy.
  const out = new Float64Array(r * r);
  for (let i = 0; i < r; i++) for (let j = i * r; j <= i * r + i; j++) out[j] = g[j];
  if (lowerOnly) return out;
  for (let i0 = 0; i0 < r; i0 += TILE) {
    const i1 = Math.min(r, i0 + TILE);
    for (let j0 = 0; j0 <= i0; j0 += TILE) {
      for (let i = i0; i < i1; i++) {
        const j1 = Math.min(i, j0 + TILE);
        for (let j = j0; j < j1; j++) out[j * r + i] = out[i * r + j];
      }
    }
  }
  return out;
}

/**
 * The `count` largest σ = √λ of the n×n Gram matrix H (lower triangle read; `count` = the rank the block can have,
 * min(rows, n)), by blocked tridiagonalisation and the root-free QL (the QL with square roots if that declines).
 * Squaring costs accuracy: λ carries an absolute error of about n·eps·λ_max, so σ below about sqrt(n·eps)·σ_max are
 * not resolved; the few λ that come out slightly negative are clamped to σ = 0, and that floor is returned as
 * `tolerance` (the caller reports it as the module's accuracy). Every Gram-route block goes through here, so they
 * share one rule.
 */
export function gramSigma(H: Float64Array, n: number, count: number): { sigma: Float64Array; tolerance: number } {
  const { d, e } = tridiagonalizeBlocked(H, n);
  const ev = tridiagonalEigenvaluesPwk(d, e) ?? tridiagonalEigenvalues(d, e);
  const k = Math.min(count, n);
  const sigma = new Float64Array(k);
  for (let i = 0; i < k; i++) sigma[i] = Math.sqrt(Math.max(ev[i], 0));
  return { sigma, tolerance: Math.sqrt(n * EPS) * (sigma[0] ?? 0) };
}

/**
 * H[idx[a]·nc + idx[b]] += f·(R_cᵀ G R_c)[a, b] for a, b < r: a chunk's rotated Gram block added at its padded column
 * indices (x ↦ R_c x is the RoPE rotation of chunk c: (R x)_j = x_j cos − x_{j+h} sin, (R x)_{j+h} = x_{j+h} cos +
 * x_j sin). G is overwritten with G·R_c. Only H's lower triangle (column ≤ row) is added to: gramSigma reads nothing
 * else, and it halves the work. The row half of the rotation is computed as the rows are added, one pass over G fewer
 * than rotating in place first; every entry is the same expression, so H's lower triangle gets the same bits.
 */
export function rotateScatter(
  H: Float64Array,
  nc: number,
  g: Float64Array,
  r: number,
  h: number,
  c: number,
  cos: Float32Array,
  sin: Float32Array,
  idx: Int32Array,
  f: number,
): void {
  // The chunk's angles as float64 once (same values): the column pass reads them r times.
  const cs = new Float64Array(h);
  const sn = new Float64Array(h);
  for (let j = 0; j < h; j++) {
    cs[j] = cos[c * h + j];
    sn[j] = sin[c * h + j];
  }
  // Columns: G ← G R.
  for (let a = 0; a < r; a++) {
    const o = a * r;
    for (let j = 0; j < h; j++) {
      const co = cs[j];
      const si = sn[j];
      const x = g[o + j];
      const y = g[o + j + h];
      g[o + j] = x * co + y * si;
      g[o + j + h] = y * co - x * si;
    }
  }
  // idx is mostly a few ascending runs (a chunk's columns, wrapped once by the padding), so the inner loops run over
  // those contiguously instead of gathering every index.
  const runs: number[] = []; // [start in g, start in H, length] triples
  for (let b = 0; b < r; ) {
    let e = b + 1;
    while (e < r && idx[e] === idx[e - 1] + 1) e++;
    runs.push(b, idx[b], e - b);
    b = e;
  }
  if (repeats(idx, nc)) {
    // Rows a sharing an H row (a padding that wraps more than once) must be added in ascending a, the order the
    // sums always had; the fused loop below visits j, j + h, j + 1, …, so rotate first and add row by row.
    for (let j = 0; j < h; j++) {
      const oj = j * r;
      const oh = (j + h) * r;
      for (let b = 0; b < r; b++) {
        const x = g[oj + b];
        const y = g[oh + b];
        g[oj + b] = x * cs[j] + y * sn[j];
        g[oh + b] = y * cs[j] - x * sn[j];
      }
    }
    for (let a = 0; a < r; a++) addRow(H, nc, idx[a], g, a * r, runs, f);
    return;
  }
  // Rows: (Rᵀ G R) rows j and j + h, straight into H, each up to its own diagonal.
  for (let j = 0; j < h; j++) {
    const co = cs[j];
    const si = sn[j];
    const oj = j * r;
    const oh = (j + h) * r;
    const ij = idx[j];
    const ih = idx[j + h];
    for (let q = 0; q < runs.length; q += 3) {
      const gs = runs[q];
      const hs = runs[q + 1];
      const len = runs[q + 2];
      // Within the run, H columns hs … hs + len − 1: row ij takes the first nj of them, row ih the first nh.
      const nj = Math.min(len, Math.max(0, ij - hs + 1));
      const nh = Math.min(len, Math.max(0, ih - hs + 1));
      const both = Math.min(nj, nh);
      const pj = ij * nc + hs;
      const ph = ih * nc + hs;
      for (let t = 0; t < both; t++) {
        const x = g[oj + gs + t];
        const y = g[oh + gs + t];
        H[pj + t] += f * (x * co + y * si);
        H[ph + t] += f * (y * co - x * si);
      }
      for (let t = both; t < nj; t++) H[pj + t] += f * (g[oj + gs + t] * co + g[oh + gs + t] * si);
      for (let t = both; t < nh; t++) H[ph + t] += f * (g[oh + gs + t] * co - g[oj + gs + t] * si);
    }
  }
}

/** H[row·nc + idx[b]] += f·g[go + b] over the runs of rotateScatter, for the columns idx[b] ≤ row. */
function addRow(H: Float64Array, nc: number, row: number, g: Float64Array, go: number, runs: number[], f: number): void {
  for (let q = 0; q < runs.length; q += 3) {
    const gs = go + runs[q];
    const hs = row * nc + runs[q + 1];
    const len = Math.min(runs[q + 2], Math.max(0, row - runs[q + 1] + 1));
    for (let t = 0; t < len; t++) H[hs + t] += f * g[gs + t];
  }
}

/** Whether some index occurs twice in idx (values < n). */
function repeats(idx: Int32Array, n: number): boolean {
  const seen = new Uint8Array(n);
  for (let a = 0; a < idx.length; a++) {
    if (seen[idx[a]]) return true;
    seen[idx[a]] = 1;
  }
  return false;
}
