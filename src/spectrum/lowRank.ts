// Exact singular values of a LoRA update ΔW = s·B·A without forming the [out, in] matrix.
// With B = Q_B R_B and Aᵀ = Q_A R_A (thin QR, Q's orthonormal), ΔW = Q_B (s·R_B R_Aᵀ) Q_Aᵀ, so σ(ΔW) = σ(s·R_B R_Aᵀ):
// an r×r SVD after two O(n·r²) QRs, against O(out·in·min(out, in)) for the dense SVD.

import { checkShape, singularValues, transpose } from './linalg';
import { qr, matMul } from './factor';

/**
 * σ of scaling·B·A for lora_A [r, in] and lora_B [out, r] (row-major). Returns min(r, in, out) values, descending;
 * every other singular value of ΔW is exactly zero.
 */
export function loraSingularValues(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  r: number,
  inF: number,
  outF: number,
  scaling: number,
): Float64Array {
  checkShape(A, r, inF, 'lora_A');
  checkShape(B, outF, r, 'lora_B');
  // [out, r] -> R_B [r, r] (or B itself when it is not tall enough to need reducing)
  const fb = outF >= r ? qr(B, outF, r, false).r : Float64Array.from(B);
  const rowsB = outF >= r ? r : outF;
  // Aᵀ [in, r] -> R_A [r, r]
  const at = transpose(A, r, inF);
  const fa = inF >= r ? qr(at, inF, r, false).r : at;
  const rowsA = inF >= r ? r : inF;
  // core = s · F_B · F_Aᵀ : [rowsB, r] x [r, rowsA] -> [rowsB, rowsA]
  const core = matMul(fb, transpose(fa, rowsA, r), rowsB, r, rowsA);
  for (let i = 0; i < core.length; i++) core[i] *= scaling;
  return singularValues(core, rowsB, rowsA);
}
