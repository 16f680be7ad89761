// Pieces of the MoRA type 6 coupled-block Gram matrix (moraSpectrum.ts): the weighted Gram Mᵀ·diag(w)·M through the
// dense kernels, the RoPE rotation of a Gram block, and a reusable scratch buffer for the assembled matrix.

import { denseKernels } from './denseKernels';
import { packStrided } from './gemmKernel';

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
 * Mᵀ diag(w) M for M [r, r]: [r, r] x [r] x [r, r] -> [r, r] (symmetric, both triangles filled), through the
 * register-blocked kernel (lower triangle, then mirrored).
 */
export function weightedGram(M: ArrayLike<number>, r: number, w: ArrayLike<number>): Float64Array {
  const packLen = Math.ceil(r / 4) * 4 * r;
  const lengths = [r * r, packLen, packLen];
  const kern = denseKernels(lengths);
  const [g, pa, pb] = kern.buffers(lengths);
  // g −= Ā·B̄ with Ā(i, p) = −w_p·M(p, i) and B̄(p, j) = M(p, j).
  const m64 = M instanceof Float64Array || M instanceof Float32Array ? M : Float64Array.from(M);
  const negW = Float64Array.from({ length: r }, (_, p) => -w[p]);
  packStrided(pa, r, r, 0, r, m64, 0, 1, r, negW);
  packStrided(pb, r, r, 0, r, m64, 0, 1, r);
  kern.gemmSub(g, 0, r, r, r, r, pa, pb, true);
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
  // Columns: G ← G R.
  for (let a = 0; a < r; a++) {
    const o = a * r;
    for (let j = 0; j < h; j++) {
      const co = cos[c * h + j];
      const si = sin[c * h + j];
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
