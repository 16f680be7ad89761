// LoRA factors of a dense ΔW: the best rank-r approximation (Eckart–Young) from its top-r singular triplets.
//
// Convention: ΔW ≈ U_r Σ_r V_rᵀ is split evenly, lora_B = U_r·√Σ_r [out, r] and lora_A = √Σ_r·V_rᵀ [r, in], and the
// adapter is written with lora_alpha = r (no rsLoRA), so PEFT's scaling alpha/r is 1 and B·A is ΔW's approximation.
// Small matrices get an exact SVD (one-sided Jacobi); larger ones randomized subspace iteration (spectrum/dense.ts).
import { randomizedSvd, type RandomizedOptions } from '../spectrum/dense';
import { denseKernels } from '../spectrum/denseKernels';
import { svdJacobi } from '../spectrum/factor';
import { packStrided } from '../spectrum/gemmKernel';

/**
 * min(out, in) up to which the SVD is exact. Jacobi costs ~10 sweeps · out·in·min(out, in): at 128 that is a few
 * hundred million flops for the largest shapes, while every real projection (≥ 512 wide) goes randomized.
 */
export const EXACT_MAX_DIM = 128;

export interface LoraFitOptions extends RandomizedOptions {
  /** Largest min(out, in) that gets the exact SVD (default EXACT_MAX_DIM); 0 forces the randomized path. */
  exactMaxDim?: number;
}

export interface LoraFit {
  A: Float32Array; // lora_A [r, in]
  B: Float32Array; // lora_B [out, r]
  sigma: Float64Array; // σ_1..σ_r of ΔW (estimates when randomized), descending
  exact: boolean;
}

/** Rank-r LoRA factors of ΔW [out, in] (row-major float64). r must be in [1, min(out, in)]. */
export function loraFit(dW: Float64Array, outF: number, inF: number, r: number, opts: LoraFitOptions = {}): LoraFit {
  const exact = Math.min(outF, inF) <= (opts.exactMaxDim ?? EXACT_MAX_DIM);
  // u [out, cols] and v [in, cols] hold the singular vectors as columns; cols ≥ r.
  let u: Float64Array;
  let v: Float64Array;
  let s: Float64Array;
  let cols: number;
  if (exact) {
    const svd = svdJacobi(dW, outF, inF);
    ({ u, v, s } = svd);
    cols = svd.p;
  } else {
    const top = randomizedSvd(dW, outF, inF, r, opts);
    ({ u, v, s } = top);
    cols = top.k;
  }
  const root = Float64Array.from({ length: r }, (_, t) => Math.sqrt(s[t]));
  const B = new Float32Array(outF * r);
  for (let o = 0; o < outF; o++) for (let t = 0; t < r; t++) B[o * r + t] = u[o * cols + t] * root[t];
  const A = new Float32Array(r * inF);
  for (let t = 0; t < r; t++) for (let i = 0; i < inF; i++) A[t * inF + i] = root[t] * v[i * cols + t];
  return { A, B, sigma: s.slice(0, r), exact };
}

/** Rows of ΔW per residual tile: 16 rows of a 5632-wide ΔW are 720 KB. */
const RESIDUAL_ROWS = 16;

/**
 * ‖ΔW − B·A‖_F in float64, from the factors as stored (after rounding to the adapter dtype), so the reported error is
 * that of the written adapter. A tile of ΔW rows at a time goes through the strided 4×4 kernel (WASM SIMD or its JS
 * twin, bit-identical): C = ΔW − Σ_t B[o, t]·A[t, i], each sum formed from zero in t order — the arithmetic of
 * accumulating row o of B·A and subtracting it — then squared and summed row by row, O(out·in·r), no [out, in]
 * temporary.
 */
export function loraResidual(dW: Float64Array, outF: number, inF: number, A: Float32Array, B: Float32Array, r: number): number {
  const in4 = (inF + 3) & ~3;
  const rows = Math.min(RESIDUAL_ROWS, outF);
  // c: the ΔW tile [rows, in4] (padding columns stay 0); pb: Aᵀ packed as B̄ᵀ [in4, r]; b: B's rows of the tile.
  const lengths = [rows * in4, in4 * r, rows * r];
  const kern = denseKernels(lengths);
  const [c, pb, b] = kern.buffers(lengths);
  packStrided(pb, inF, r, 0, r, A, 0, 1, inF);
  let sum = 0;
  for (let o0 = 0; o0 < outF; o0 += rows) {
    const h = Math.min(rows, outF - o0);
    for (let i = 0; i < h; i++) c.set(dW.subarray((o0 + i) * inF, (o0 + i + 1) * inF), i * in4);
    b.set(B.subarray(o0 * r, (o0 + h) * r));
    kern.gemmStrided(c, 0, in4, h, in4, r, b, 0, 4 * r, r, 1, pb);
    for (let i = 0; i < h; i++) {
      const co = i * in4;
      for (let j = 0; j < inF; j++) {
        const d = c[co + j];
        sum += d * d;
      }
    }
  }
  return Math.sqrt(sum);
}
