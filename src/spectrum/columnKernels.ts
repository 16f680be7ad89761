// JS references of two O(n)-per-column loops of the blocked reductions, moved behind DenseKernels so that the WASM
// twins (wasmColumn.ts) can take them over; the arithmetic here defines what both compute. The other two column
// kernels' references are packStrided (gemmKernel.ts) and reflectRun (householder.ts).

import { dotFrom } from './householder';

/**
 * The tridiagonalisation's W column: acc[r] *= τ and dot = Σ acc[r]·v[r] (in order), then
 * w[wo + r·ws] = acc[r] + (−0.5·τ·dot)·v[r], for r in [c0, n).
 */
export function wColumn(acc: Float64Array, v: Float64Array, c0: number, n: number, tau: number, w: Float64Array, wo: number, ws: number): void {
  let dot = 0;
  for (let r = c0; r < n; r++) {
    acc[r] *= tau;
    dot += acc[r] * v[r];
  }
  const alpha = -0.5 * tau * dot;
  for (let r = c0; r < n; r++) w[wo + r * ws] = acc[r] + alpha * v[r];
}

/** dst[dOff + c·ds] = f·src[c] for c in [c0, c1) (the bidiagonalisation's Y column). */
export function scaleTo(src: Float64Array, c0: number, c1: number, f: number, dst: Float64Array, dOff: number, ds: number): void {
  for (let c = c0; c < c1; c++) dst[dOff + c * ds] = f * src[c];
}

// The row loops of the unblocked bidiagonalisation: linalg.ts bidiagonalize runs them directly, and the blocked one's
// tail through DenseKernels (WASM twins in wasmRows.ts), so both apply the same skips of zero factors.

/** w[j] += v[i]·a[i·lda + j] for rows i in [r0, r1) in order (rows with v[i] = 0 skipped), j in [c0, c1). */
export function rowsAxpy(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, v: Float64Array, w: Float64Array): void {
  for (let i = r0; i < r1; i++) {
    const vi = v[i];
    if (vi === 0) continue;
    const row = i * lda;
    for (let j = c0; j < c1; j++) w[j] += vi * a[row + j];
  }
}

/** a[i·lda + j] −= (β·v[i])·w[j] for i in [r0, r1) (rows with a zero factor skipped), j in [c0, c1). */
export function rowsRank1(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, beta: number, v: Float64Array, w: Float64Array): void {
  for (let i = r0; i < r1; i++) {
    const f = beta * v[i];
    if (f === 0) continue;
    const row = i * lda;
    for (let j = c0; j < c1; j++) a[row + j] -= f * w[j];
  }
}

/** The right reflector's update: a[i·lda + j] −= (β·dotFrom(a, i·lda, w, c0, c1))·w[j], rows i in [r0, r1). */
export function rowsDotRank1(a: Float64Array, lda: number, r0: number, r1: number, c0: number, c1: number, beta: number, w: Float64Array): void {
  for (let i = r0; i < r1; i++) {
    const row = i * lda;
    const f = beta * dotFrom(a, row, w, c0, c1);
    if (f === 0) continue;
    for (let j = c0; j < c1; j++) a[row + j] -= f * w[j];
  }
}
