/**
 * Plain LoRA math (PEFT `lora.Linear`): ΔW = (B·A) · scaling, with scaling = alpha / r, or alpha / √r with rsLoRA.
 * All matrices are row-major Float32Array; accumulation runs in float64 so results do not depend on loop order.
 */
import { AdapterError } from './errors';

/** PEFT's scaling factor: lora_alpha / r, or lora_alpha / sqrt(r) when use_rslora. */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  if (!(r > 0)) throw new AdapterError('RankMismatch', `LoRA rank must be positive, got ${r}`);
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** ΔW = scaling · B·A: [out, r] x [r, in] -> [out, in]. */
export function loraDeltaW(
  A: Float32Array,
  B: Float32Array,
  r: number,
  inF: number,
  outF: number,
  scaling: number,
): Float32Array {
  if (A.length !== r * inF) throw new AdapterError('ShapeMismatch', `lora_A has ${A.length} values, expected ${r}×${inF}`);
  if (B.length !== outF * r) throw new AdapterError('ShapeMismatch', `lora_B has ${B.length} values, expected ${outF}×${r}`);
  const dW = new Float32Array(outF * inF);
  const row = new Float64Array(inF);
  for (let o = 0; o < outF; o++) loraRow(A, B, r, inF, scaling, o, row, dW, o * inF);
  return dW;
}

/**
 * Row o of scaling·B·A into out[outOff ..], float32: Σ_k B[o,k]·A[k,:] summed in float64 in k order in `acc`
 * (skipping B[o,k] = 0, so 0·Inf never turns a row NaN), then scaled once. The merge's row kernels match it bit for bit.
 */
export function loraRow(
  A: Float32Array, B: Float32Array, r: number, inF: number, scaling: number, o: number, acc: Float64Array, out: Float32Array, outOff = 0,
): void {
  acc.fill(0, 0, inF);
  for (let k = 0; k < r; k++) {
    const b = B[o * r + k];
    if (b === 0) continue;
    const ao = k * inF;
    for (let i = 0; i < inF; i++) acc[i] += b * A[ao + i];
  }
  for (let i = 0; i < inF; i++) out[outOff + i] = acc[i] * scaling;
}

/** LoRA forward without forming ΔW: x [n, in] -> scaling · (x·Aᵀ)·Bᵀ [n, out]. */
export function loraApply(
  A: Float32Array,
  B: Float32Array,
  r: number,
  inF: number,
  outF: number,
  scaling: number,
  x: Float32Array,
  n: number,
): Float32Array {
  if (x.length !== n * inF) throw new AdapterError('ShapeMismatch', `x has ${x.length} values, expected ${n}×${inF}`);
  const y = new Float32Array(n * outF);
  const t = new Float64Array(r);
  for (let s = 0; s < n; s++) {
    // [r, in] x [in] -> [r]
    for (let k = 0; k < r; k++) {
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += A[k * inF + i] * x[s * inF + i];
      t[k] = acc;
    }
    // [out, r] x [r] -> [out]
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += B[o * r + k] * t[k];
      y[s * outF + o] = acc * scaling;
    }
  }
  return y;
}

/** Transposes a row-major [rows, cols] matrix to [cols, rows] (PEFT's `transpose(w, fan_in_fan_out)`). */
export function transpose2d(m: Float32Array, rows: number, cols: number): Float32Array {
  if (m.length !== rows * cols) throw new AdapterError('ShapeMismatch', `matrix has ${m.length} values, expected ${rows}×${cols}`);
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  }
  return t;
}
