// Register-blocked rank-k update C −= Ā·B̄ for the blocked reductions (bidiagonal and tridiagonal). Plain JS over
// Float64Array: both operands are packed into 4-wide panels first so the inner loop reads two short contiguous
// streams and keeps a 4×4 block of C in 16 locals (≈ 6 GFLOP/s in V8). This is the reference and the fallback; the
// WASM SIMD twin in wasmKernels.ts does the same arithmetic in f64x2 lanes (≈ 15–20 GFLOP/s).

/**
 * Packs columns [p0, p1) of a rows×k operand into 4-row blocks, element (r, p) at ((r >> 2)·k + p)·4 + (r & 3),
 * reading it from src[off + r·rs + (p − p0)·ps], times wp[p − p0] when weights are given; rows past `rows` (up to
 * the next multiple of 4) are zeroed. Strides instead of an element callback: V8 could not inline the many different
 * callbacks, which made packing cost as much as the update itself.
 */
export function packStrided(
  dst: Float64Array,
  rows: number,
  k: number,
  p0: number,
  p1: number,
  src: Float64Array | Float32Array,
  off: number,
  rs: number,
  ps: number,
  wp?: ArrayLike<number>,
): void {
  const blocks = Math.ceil(rows / 4);
  for (let rb = 0; rb < blocks; rb++) {
    const r0 = rb * 4;
    const full = r0 + 4 <= rows;
    for (let p = p0; p < p1; p++) {
      const o = (rb * k + p) * 4;
      const so = off + r0 * rs + (p - p0) * ps;
      const f = wp ? wp[p - p0] : 1;
      if (full) {
        dst[o] = src[so] * f;
        dst[o + 1] = src[so + rs] * f;
        dst[o + 2] = src[so + 2 * rs] * f;
        dst[o + 3] = src[so + 3 * rs] * f;
      } else {
        for (let ii = 0; ii < 4; ii++) dst[o + ii] = r0 + ii < rows ? src[so + ii * rs] * f : 0;
      }
    }
  }
}

/**
 * C[c0 + i·ldc + j] −= Σ_p Ā(i, p)·B̄(p, j) for i < rows, j < cols, with Ā packed by packStrided into `pa` and
 * B̄ᵀ packed the same way into `pb` (so B̄'s columns play the role of rows). Only the lower triangle j ≤ i is
 * written when `lower` is set (symmetric updates), block by block, so a few entries above it may be touched but
 * never read back by callers that work on the lower triangle.
 */
export function gemmSubtract(
  c: Float64Array,
  c0: number,
  ldc: number,
  rows: number,
  cols: number,
  k: number,
  pa: Float64Array,
  pb: Float64Array,
  lower = false,
): void {
  const rBlocks = Math.ceil(rows / 4);
  const cBlocks = Math.ceil(cols / 4);
  for (let rb = 0; rb < rBlocks; rb++) {
    const i0 = rb * 4;
    const cEnd = lower ? Math.min(cBlocks, rb + 1) : cBlocks;
    const fullRows = i0 + 4 <= rows;
    for (let cb = 0; cb < cEnd; cb++) {
      const j0 = cb * 4;
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      let ao = rb * k * 4;
      let bo = cb * k * 4;
      for (let p = 0; p < k; p++, ao += 4, bo += 4) {
        const a0 = pa[ao], a1 = pa[ao + 1], a2 = pa[ao + 2], a3 = pa[ao + 3];
        const b0 = pb[bo], b1 = pb[bo + 1], b2 = pb[bo + 2], b3 = pb[bo + 3];
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
      }
      if (fullRows && j0 + 4 <= cols) {
        let o = c0 + i0 * ldc + j0;
        c[o] -= c00; c[o + 1] -= c01; c[o + 2] -= c02; c[o + 3] -= c03; o += ldc;
        c[o] -= c10; c[o + 1] -= c11; c[o + 2] -= c12; c[o + 3] -= c13; o += ldc;
        c[o] -= c20; c[o + 1] -= c21; c[o + 2] -= c22; c[o + 3] -= c23; o += ldc;
        c[o] -= c30; c[o + 1] -= c31; c[o + 2] -= c32; c[o + 3] -= c33;
        continue;
      }
      // Edge block: write back only the entries inside the matrix.
      const blk = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
      for (let ii = 0; ii < 4 && i0 + ii < rows; ii++) {
        for (let jj = 0; jj < 4 && j0 + jj < cols; jj++) c[c0 + (i0 + ii) * ldc + j0 + jj] -= blk[ii * 4 + jj];
      }
    }
  }
}

/**
 * The same update with Ā read in place instead of packed: Ā(i, p) = a[a0 + (i >> 2)·ablk + (i & 3)·ars + p·acs],
 * so a row-major tile serves as Ā (ablk = 4·ld, ars = ld, acs = 1) and so does its transpose (ablk = 4, ars = 1,
 * acs = ld) — the skinny products of randomized SVD (skinnyProducts.ts) need no packing of the big operand. B̄ᵀ is
 * packed as for gemmSubtract. Rows of a partial last block are not read; cols must be a multiple of 4.
 */
export function gemmStridedSubtract(
  c: Float64Array,
  c0: number,
  ldc: number,
  rows: number,
  cols: number,
  k: number,
  a: Float64Array,
  a0: number,
  ablk: number,
  ars: number,
  acs: number,
  pb: Float64Array,
): void {
  if (cols % 4 !== 0) throw new RangeError(`gemmStridedSubtract: cols ${cols} is not a multiple of 4`);
  const rBlocks = Math.ceil(rows / 4);
  for (let rb = 0; rb < rBlocks; rb++) {
    const i0 = rb * 4;
    const n = Math.min(4, rows - i0);
    const r0 = a0 + rb * ablk;
    // A missing row reads row 0 again and is then not written back: the same work, no out-of-range reads.
    const r1 = n > 1 ? r0 + ars : r0;
    const r2 = n > 2 ? r0 + 2 * ars : r0;
    const r3 = n > 3 ? r0 + 3 * ars : r0;
    for (let j0 = 0; j0 < cols; j0 += 4) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      let bo = j0 * k;
      for (let p = 0, ap = 0; p < k; p++, ap += acs, bo += 4) {
        const a0v = a[r0 + ap], a1 = a[r1 + ap], a2 = a[r2 + ap], a3 = a[r3 + ap];
        const b0 = pb[bo], b1 = pb[bo + 1], b2 = pb[bo + 2], b3 = pb[bo + 3];
        c00 += a0v * b0; c01 += a0v * b1; c02 += a0v * b2; c03 += a0v * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
      }
      let o = c0 + i0 * ldc + j0;
      c[o] -= c00; c[o + 1] -= c01; c[o + 2] -= c02; c[o + 3] -= c03;
      if (n < 2) continue;
      o += ldc;
      c[o] -= c10; c[o + 1] -= c11; c[o + 2] -= c12; c[o + 3] -= c13;
      if (n < 3) continue;
      o += ldc;
      c[o] -= c20; c[o + 1] -= c21; c[o + 2] -= c22; c[o + 3] -= c23;
      if (n < 4) continue;
      o += ldc;
      c[o] -= c30; c[o + 1] -= c31; c[o + 2] -= c32; c[o + 3] -= c33;
    }
  }
}
