// Pieces of the MoRA type 6 Gram-matrix route (moraSpectrum.ts): the weighted Gram Mᵀ·diag(w)·M through the dense
// kernels, the RoPE rotation of a Gram block, a reusable scratch buffer for the assembled matrix, and σ from a Gram
// matrix's eigenvalues with the one tolerance rule every Gram-route block shares.

import { denseKernels } from './denseKernels';
import { packStrided } from './gemmKernel';
import { tridiagonalEigenvalues } from './linalg';
import { tridiagonalEigenvaluesPwk } from './tridiagEigen';
import { tridiagonalizeBlocked } from './tridiagKernel';

const EPS = 2.220446049250313e-16;

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
 * Mᵀ diag(w) M for M [k, r] (k defaults to r): [r, k] x [k] x [k, r] -> [r, r] (symmetric, both triangles filled),
 * through the register-blocked kernel (lower triangle, then mirrored).
 */
export function weightedGram(M: ArrayLike<number>, r: number, w: ArrayLike<number>, k = r): Float64Array {
  const packLen = Math.ceil(r / 4) * 4 * k;
  const lengths = [r * r, packLen, packLen];
  const kern = denseKernels(lengths);
  const [g, pa, pb] = kern.buffers(lengths);
  // g −= Ā·B̄ with Ā(i, p) = −w_p·M(p, i) and B̄(p, j) = M(p, j).
  const m64 = M instanceof Float64Array || M instanceof Float32Array ? M : Float64Array.from(M);
  const negW = Float64Array.from({ length: k }, (_, p) => -w[p]);
  packStrided(pa, r, k, 0, k, m64, 0, 1, r, negW);
  packStrided(pb, r, k, 0, k, m64, 0, 1, r);
  kern.gemmSub(g, 0, r, r, r, k, pa, pb, true);
  // Copy out of the kernels' buffers (the next reduction reuses them), mirroring the lower triangle.
  const out = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j <= i; j++) {
      const x = g[i * r + j];
      out[i * r + j] = x;
      out[j * r + i] = x;
    }
  }
  return out;
}

/**
 * In place G ← R_cᵀ G R_c, where x ↦ R_c x is the RoPE rotation of chunk c:
 * (R x)_j = x_j cos − x_{j+h} sin, (R x)_{j+h} = x_{j+h} cos + x_j sin.
 */
export function rotatePairs(g: Float64Array, r: number, h: number, c: number, cos: Float32Array, sin: Float32Array): void {
  // The chunk's angles as float64 once (same values): the column pass reads them r times.
  const cs = Float64Array.from(cos.subarray(c * h, c * h + h));
  const sn = Float64Array.from(sin.subarray(c * h, c * h + h));
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
  // Rows: G ← Rᵀ G.
  for (let j = 0; j < h; j++) {
    const co = cos[c * h + j];
    const si = sin[c * h + j];
    const oj = j * r;
    const oh = (j + h) * r;
    for (let b = 0; b < r; b++) {
      const x = g[oj + b];
      const y = g[oh + b];
      g[oj + b] = x * co + y * si;
      g[oh + b] = y * co - x * si;
    }
  }
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
 * H[idx[a]·nc + idx[b]] += f·g[a·r + b] for a, b < r: adds a chunk's rotated Gram block at its padded column
 * indices. idx is mostly a few ascending runs (a chunk's columns, wrapped once by the padding), so the inner loop runs
 * over those contiguously instead of gathering every index.
 */
export function scatterAdd(H: Float64Array, nc: number, g: Float64Array, r: number, idx: Int32Array, f: number): void {
  const runs: number[] = []; // [start in g, start in H, length] triples
  for (let b = 0; b < r; ) {
    let e = b + 1;
    while (e < r && idx[e] === idx[e - 1] + 1) e++;
    runs.push(b, idx[b], e - b);
    b = e;
  }
  for (let a = 0; a < r; a++) {
    const ho = idx[a] * nc;
    const go = a * r;
    for (let q = 0; q < runs.length; q += 3) {
      const gs = go + runs[q];
      const hs = ho + runs[q + 1];
      const len = runs[q + 2];
      for (let t = 0; t < len; t++) H[hs + t] += f * g[gs + t];
    }
  }
}
