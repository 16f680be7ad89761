/**
 * DoRA merge as PEFT's `DoraLinearLayer` does it (merge_and_unload): in the nn.Linear layout [out, in],
 * norm_o = ‖W[o,:] + ΔW[o,:]‖₂ (torch.linalg.norm(weight, dim=1)), and the merged weight is
 * (magnitude_o / norm_o) · (W[o,:] + ΔW[o,:]). With fan_in_fan_out the weight is stored [in, out], so the norm and
 * the factor run over columns instead (PEFT transposes before the norm and transposes the factor back).
 */
import { AdapterError } from './errors';

/** Per-output L2 norm of W + ΔW. Both in the base layout: [out, in], or [in, out] when fanInFanOut. */
export function doraWeightNorm(W: Float32Array, dW: Float32Array, outF: number, inF: number, fanInFanOut: boolean): Float64Array {
  const norm = new Float64Array(outF);
  for (let a = 0; a < (fanInFanOut ? inF : outF); a++) {
    for (let b = 0; b < (fanInFanOut ? outF : inF); b++) {
      const idx = fanInFanOut ? a * outF + b : a * inF + b;
      const v = W[idx] + dW[idx];
      norm[fanInFanOut ? b : a] += v * v;
    }
  }
  for (let o = 0; o < outF; o++) norm[o] = Math.sqrt(norm[o]);
  return norm;
}

/** (magnitude / ‖W + ΔW‖) ⊙ (W + ΔW), per output feature; returns a new array in the base layout. */
export function doraMerge(
  W: Float32Array,
  dW: Float32Array,
  magnitude: Float32Array,
  outF: number,
  inF: number,
  fanInFanOut: boolean,
): Float32Array {
  if (magnitude.length !== outF) {
    throw new AdapterError('ShapeMismatch', `DoRA magnitude has ${magnitude.length} values, expected out=${outF}`);
  }
  const norm = doraWeightNorm(W, dW, outF, inF, fanInFanOut);
  const merged = new Float32Array(W.length);
  for (let a = 0; a < (fanInFanOut ? inF : outF); a++) {
    for (let b = 0; b < (fanInFanOut ? outF : inF); b++) {
      const idx = fanInFanOut ? a * outF + b : a * inF + b;
      const o = fanInFanOut ? b : a;
      // A zero-norm row gives 0/0 = NaN as in torch; mergeWeight rejects non-finite results like PEFT's safe_merge.
      merged[idx] = (magnitude[o] / norm[o]) * (W[idx] + dW[idx]);
    }
  }
  return merged;
}
