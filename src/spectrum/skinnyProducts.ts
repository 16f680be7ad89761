// The products of a randomized SVD: a big dense A [m, n] times a skinny block of l ≪ n columns, A·X and Aᵀ·Y.
// Both run through the 4×4 register-blocked rank-k update with the big operand read in place (DenseKernels
// .gemmStrided: WASM SIMD where the engine has it, its plain-JS twin gemmStridedSubtract otherwise, bit-identical),
// one cache-sized tile of A at a time. A tile is copied row by row into the kernels' buffers (the wasm arena; a
// Float32Array A is widened exactly on the way) and read either as it is (A·X) or transposed through strides (Aᵀ·Y),
// so the contraction needs no packing of A; only the skinny operand of the tile's k-range is packed, once per range.
// The working set is two tiles and the output, never a copy of A.
//
// The kernel subtracts (C −= Ā·B̄): C starts at zero and is negated on the way out, both exact. Columns are padded
// to l4 = 4·⌈l/4⌉ (zero rows of the packed skinny operand) so every column block is a full one.

import { denseKernels } from './denseKernels';
import { packStrided } from './gemmKernel';

/** Rows of the A·X tile (a multiple of 4) × its contraction length: a 64×256 float64 tile is 128 KB. */
const AX_ROWS = 64;
const AX_K = 256;
/** Columns of A per Aᵀ·Y tile (a multiple of 4) × rows of A in it (long rows for copyTile). */
const ATY_COLS = 256;
const ATY_K = 64;

export type DenseInput = Float64Array | Float32Array;

const pad4 = (x: number) => (x + 3) & ~3;

/** Copies C [rows, l4] (negated, first l columns) into a fresh [rows, l] array. */
function unpack(c: Float64Array, rows: number, l: number, l4: number): Float64Array {
  const y = new Float64Array(rows * l);
  for (let i = 0; i < rows; i++) {
    const co = i * l4;
    const yo = i * l;
    for (let t = 0; t < l; t++) y[yo + t] = -c[co + t];
  }
  return y;
}

/**
 * tile[r·w + c] = a[off + r·ld + c] for r < h, c < w, one native copy per row (a Float32Array A is widened exactly on
 * the way). Each call creates a view object, so tiles keep their rows long (≥ 256 values): with 64-value rows the
 * views cost more than the copying.
 */
function copyTile(tile: Float64Array, a: DenseInput, off: number, ld: number, h: number, w: number): void {
  for (let r = 0; r < h; r++) tile.set(a.subarray(off + r * ld, off + r * ld + w), r * w);
}

/** Y = A·X: A [m, n] row-major, X [n, l] row-major -> Y [m, l]. */
export function mulSkinny(a: DenseInput, m: number, n: number, x: Float64Array, l: number): Float64Array {
  if (m === 0 || l === 0 || n === 0) return new Float64Array(m * l);
  const l4 = pad4(l);
  const kTile = Math.min(AX_K, n);
  const rTile = Math.min(AX_ROWS, pad4(m));
  const lengths = [rTile * kTile, l4 * kTile, m * l4];
  const kern = denseKernels(lengths);
  // tile: rows × k of A, row-major; pb: Xᵀ over the same k-range, packed; c: the whole output [m, l4].
  const [tile, pb, c] = kern.buffers(lengths);
  for (let k0 = 0; k0 < n; k0 += kTile) {
    const k = Math.min(kTile, n - k0);
    // B̄ᵀ(t, p) = X[k0 + p, t]; rows t ≥ l are zeroed by the packer.
    packStrided(pb, l, k, 0, k, x, k0 * l, 1, l);
    for (let r0 = 0; r0 < m; r0 += rTile) {
      const rows = Math.min(rTile, m - r0);
      copyTile(tile, a, r0 * n + k0, n, rows, k);
      // Ā(i, p) = tile[i·k + p]: blocks of 4 rows, rows k apart, contiguous in p.
      kern.gemmStrided(c, r0 * l4, l4, rows, l4, k, tile, 0, 4 * k, k, 1, pb);
    }
  }
  return unpack(c, m, l, l4);
}

/** Z = Aᵀ·Y: A [m, n] row-major, Y [m, l] row-major -> Z [n, l]. */
export function mulSkinnyT(a: DenseInput, m: number, n: number, y: Float64Array, l: number): Float64Array {
  if (n === 0 || l === 0 || m === 0) return new Float64Array(n * l);
  const l4 = pad4(l);
  const kTile = Math.min(ATY_K, m);
  const cTile = Math.min(ATY_COLS, pad4(n));
  const lengths = [kTile * cTile, l4 * kTile, n * l4];
  const kern = denseKernels(lengths);
  // tile: k rows × cols columns of A, row-major; pb: Yᵀ over the same rows of A, packed; c: the output [n, l4].
  const [tile, pb, c] = kern.buffers(lengths);
  for (let k0 = 0; k0 < m; k0 += kTile) {
    const k = Math.min(kTile, m - k0);
    packStrided(pb, l, k, 0, k, y, k0 * l, 1, l);
    for (let j0 = 0; j0 < n; j0 += cTile) {
      const cols = Math.min(cTile, n - j0);
      copyTile(tile, a, k0 * n + j0, n, k, cols);
      // Ā(j, p) = A[k0 + p, j0 + j] = tile[p·cols + j]: blocks of 4 adjacent columns, rows of the tile apart in p.
      kern.gemmStrided(c, j0 * l4, l4, cols, l4, k, tile, 0, 4, 1, cols, pb);
    }
  }
  return unpack(c, n, l, l4);
}
