// Multi-adapter combination of ΔW task tensors: weighted linear sum and TIES (trim, elect sign, disjoint mean).
//
// Semantics follow PEFT's merge_utils (`task_arithmetic`, `ties` with majority_sign_method "total" or "frequency"),
// applied to each adapter's full ΔW of one base tensor, which is what mergekit does with task vectors and what PEFT's
// `ties_svd` does before its SVD truncation. We merge into the base weights, so no rank truncation follows.
//   linear: Σ_i w_i ΔW_i
//   ties:   T_i = top-k(|ΔW_i|) of ΔW_i with k = floor(density · n)   (density ≥ 1 keeps everything)
//           s   = sign(Σ_i T_i) (≥ 0 counts as +), or sign(Σ_i sign(T_i)) with "frequency"
//           out = Σ_i w_i T_i [sign(T_i) == s] / max(1, Σ_i [sign(T_i) == s])
// Zero entries have sign 0 and never count towards the divisor, exactly as torch.sign does in PEFT.
import { KindError } from '../util/kindError';

export type SignMethod = 'total' | 'frequency';

/** Thrown for invalid combination parameters (bad density, mismatched lengths). */
export class TiesError extends KindError<'BadDensity' | 'LengthMismatch' | 'NoTasks'> {
  override name = 'TiesError';
}

function checkTasks(deltas: Float32Array[], weights: number[]): number {
  if (deltas.length === 0) throw new TiesError('NoTasks', 'at least one task tensor is needed');
  if (weights.length !== deltas.length) {
    throw new TiesError('LengthMismatch', `${deltas.length} task tensors but ${weights.length} weights`);
  }
  const n = deltas[0].length;
  for (const d of deltas) {
    if (d.length !== n) throw new TiesError('LengthMismatch', `task tensors differ in size: ${n} vs ${d.length}`);
  }
  return n;
}

/**
 * The k-th largest |x| (1-based k ≤ n) by a two-pass radix select over the float bit patterns: for non-negative
 * floats the IEEE bits order like unsigned integers, so 16-bit histograms of the high then low half find it exactly
 * without copying or sorting the tensor.
 */
export function kthLargestAbsBits(x: Float32Array, k: number): number {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const hist = new Uint32Array(65536);
  for (let i = 0; i < bits.length; i++) hist[(bits[i] & 0x7fffffff) >>> 16]++;
  let remaining = k;
  let hi = 65535;
  for (; hi >= 0; hi--) {
    if (hist[hi] >= remaining) break;
    remaining -= hist[hi];
  }
  hist.fill(0);
  for (let i = 0; i < bits.length; i++) {
    const a = bits[i] & 0x7fffffff;
    if (a >>> 16 === hi) hist[a & 0xffff]++;
  }
  let lo = 65535;
  for (; lo >= 0; lo--) {
    if (hist[lo] >= remaining) break;
    remaining -= hist[lo];
  }
  return ((hi << 16) | lo) >>> 0;
}

/**
 * Keeps the k = floor(density · n) entries of largest magnitude and zeroes the rest, in place (PEFT
 * `magnitude_based_pruning`). Equal magnitudes at the threshold are kept in index order, which makes the
 * choice deterministic where torch.topk leaves it unspecified.
 */
export function magnitudePrune(t: Float32Array, density: number): Float32Array {
  if (!(density >= 0)) throw new TiesError('BadDensity', `density must be in [0, 1], got ${density}`);
  if (density >= 1) return t;
  const k = Math.floor(density * t.length);
  if (k === 0) return t.fill(0);
  const threshold = kthLargestAbsBits(t, k);
  const bits = new Uint32Array(t.buffer, t.byteOffset, t.length);
  // Branch-free passes: with random signs and magnitudes a data-dependent branch per element mispredicts half the time.
  let above = 0;
  for (let i = 0; i < bits.length; i++) above += +((bits[i] & 0x7fffffff) > threshold);
  let equalBudget = k - above;
  for (let i = 0; i < bits.length; i++) {
    const a = bits[i] & 0x7fffffff;
    if (a === threshold) {
      if (equalBudget > 0) equalBudget--;
      else bits[i] = 0;
    } else {
      bits[i] &= -+(a > threshold); // below the threshold: +0
    }
  }
  return t;
}

/** Σ_i w_i ΔW_i into `out` (which may alias one of the inputs: the sum is formed element by element). */
export function linearCombine(deltas: Float32Array[], weights: number[], out?: Float32Array): Float32Array {
  const n = checkTasks(deltas, weights);
  const res = out ?? new Float32Array(n);
  const K = deltas.length;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < K; t++) s += weights[t] * deltas[t][i];
    res[i] = s;
  }
  return res;
}

/**
 * TIES merge of the task tensors (pruned in place) into `out`, which may alias one of the inputs.
 * density in [0, 1]; weights scale each task after the sign election, as in PEFT.
 */
export function tiesCombine(
  deltas: Float32Array[],
  weights: number[],
  density: number,
  signMethod: SignMethod = 'total',
  out?: Float32Array,
): Float32Array {
  const n = checkTasks(deltas, weights);
  if (!(density >= 0 && density <= 1)) throw new TiesError('BadDensity', `density must be in [0, 1], got ${density}`);
  for (const d of deltas) magnitudePrune(d, density);
  const res = out ?? new Float32Array(n);
  const K = deltas.length;
  for (let i = 0; i < n; i++) {
    let vote = 0;
    for (let t = 0; t < K; t++) {
      const v = deltas[t][i];
      vote += signMethod === 'total' ? v : Math.sign(v);
    }
    const majority = vote >= 0 ? 1 : -1;
    let sum = 0;
    let count = 0;
    for (let t = 0; t < K; t++) {
      const v = deltas[t][i];
      if (Math.sign(v) === majority) {
        sum += weights[t] * v;
        count++;
      }
    }
    res[i] = sum / Math.max(1, count);
  }
  return res;
}
