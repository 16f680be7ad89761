// Dense fallback for a ΔW with no known structure (e.g. a full fine-tune: W_finetuned − W_base): the top-k
// singular triplets by randomized subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4) with a rigorous
// a-posteriori error bound, and the exact Frobenius norm.

import { checkShape } from './linalg';
import { svdJacobi } from './factor';
import { mulberry, randn } from './random';
import { mulSkinny, mulSkinnyT, type DenseInput } from './skinnyProducts';
import { thinQr } from './thinQr';

export interface RandomizedOptions {
  /** Extra sketch columns beyond k (default 10). */
  oversample?: number;
  /** Power iterations (default 3); each one sharpens the decay of the sketched spectrum. */
  powerIters?: number;
  seed?: number;
}

export interface TopSvd {
  /** Estimates of σ_1..σ_k, descending. Each is a lower bound of the true σ_i. */
  s: Float64Array;
  /** Upper bounds: σ_i ≤ sqrt(s_i² + residual²). */
  upper: Float64Array;
  /** Left vectors [m, k] and right vectors [n, k], row-major, columns orthonormal. */
  u: Float64Array;
  v: Float64Array;
  k: number;
  /** Exact ‖A‖_F. */
  frobenius: number;
  /** ‖A − QQᵀA‖_F = sqrt(‖A‖_F² − ‖QᵀA‖_F²): bounds ‖(I − QQᵀ)A‖₂ and hence the error of every estimate. */
  residual: number;
}

export function frobeniusNorm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/** Top-k singular triplets of a dense row-major m×n matrix. */
export function randomizedSvd(a: ArrayLike<number>, m: number, n: number, k: number, opts: RandomizedOptions = {}): TopSvd {
  checkShape(a, m, n, 'randomizedSvd');
  const p = Math.min(m, n);
  k = Math.max(0, Math.min(k, p));
  const l = Math.min(p, k + (opts.oversample ?? 10));
  const rnd = mulberry(opts.seed ?? 1);
  const omega = Float64Array.from({ length: n * l }, () => randn(rnd));
  // The products read A tile by tile through the 4×4 kernel (skinnyProducts.ts: WASM SIMD or JS, bit-identical);
  // other array types are copied once.
  const dense: DenseInput = a instanceof Float64Array || a instanceof Float32Array ? a : Float64Array.from(a);
  // Q spans range(A (AᵀA)^q Ω); re-orthonormalising after every product keeps small directions from washing out.
  let q = thinQr(mulSkinny(dense, m, n, omega, l), m, l).q;
  for (let it = 0; it < (opts.powerIters ?? 3); it++) {
    const z = thinQr(mulSkinnyT(dense, m, n, q, l), n, l).q;
    q = thinQr(mulSkinny(dense, m, n, z, l), m, l).q;
  }
  // Bᵀ = AᵀQ [n, l]; its SVD Bᵀ = V Σ Uᵦᵀ gives A ≈ Q Uᵦ Σ Vᵀ. The SVD goes through Bᵀ = Q_b·R_b and the Jacobi SVD
  // of the small R_b = U_R Σ Uᵦᵀ (so V = Q_b·U_R): Jacobi on the tall Bᵀ itself costs sweeps·n·l² instead of n·l².
  const bt = mulSkinnyT(dense, m, n, q, l);
  const { q: qb, r: rb } = thinQr(bt, n, l);
  const svd = svdJacobi(rb, l, l);
  const frob = frobeniusNorm(dense);
  const captured = frobeniusNorm(bt);
  const residual = Math.sqrt(Math.max(0, frob * frob - captured * captured));
  const s = svd.s.slice(0, k);
  // U = Q·Uᵦ [m, k], where Uᵦ is the right factor of R_b's SVD (svd.v, [l, l]); V = Q_b·U_R [n, k] (svd.u, [l, l]).
  const u = new Float64Array(m * k);
  const v = new Float64Array(n * k);
  for (const [dst, src, rows, f] of [[u, q, m, svd.v], [v, qb, n, svd.u]] as const) {
    for (let i = 0; i < rows; i++) {
      for (let t = 0; t < l; t++) {
        const x = src[i * l + t];
        if (x === 0) continue;
        for (let c = 0; c < k; c++) dst[i * k + c] += x * f[t * l + c];
      }
    }
  }
  const upper = Float64Array.from(s, (x) => Math.sqrt(x * x + residual * residual));
  return { s, upper, u, v, k, frobenius: frob, residual };
}

