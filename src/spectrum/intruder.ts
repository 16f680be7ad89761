// Intruder dimensions (Shuttleworth, Andreas, Torralba & Sharma, "LoRA vs Full Fine-tuning: An Illusion of
// Equivalence", arXiv 2410.21228): a top singular vector y_j of the fine-tuned W + ΔW is an intruder when
// max_i |cos(y_j, x_i)| < ε over the base weight's singular vectors x_i. We compare left singular vectors (the
// output space) and, because the full SVD of a 4096×4096 base is out of reach here, the base's top `kBase` vectors;
// a larger kBase can only lower the count, so a reported count is an upper bound on the paper's.

import { randomizedSvd, type RandomizedOptions } from './dense';

export interface IntruderOptions extends RandomizedOptions {
  /** Top singular vectors of W + ΔW examined (paper: 10). */
  k?: number;
  /** Top singular vectors of the base compared against (default 50). */
  kBase?: number;
  /** ε: below this best |cosine| a vector counts as an intruder (default 0.5). */
  threshold?: number;
}

export interface IntruderResult {
  count: number;
  k: number;
  kBase: number;
  threshold: number;
  /** For each examined vector of W + ΔW, its best |cosine| against the base vectors. */
  maxSimilarity: number[];
  /** Indices (0 = largest σ) of the vectors that are intruders. */
  indices: number[];
}

/**
 * Best |cos| of each column of `ft` ([m, k] row-major, unit columns) against the columns of `base` ([m, kb]).
 * Singular vectors carry an arbitrary sign, hence the absolute value.
 */
export function maxCosines(ft: Float64Array, k: number, base: Float64Array, kb: number, m: number): number[] {
  const best = new Array<number>(k).fill(0);
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < kb; i++) {
      let dot = 0;
      for (let r = 0; r < m; r++) dot += ft[r * k + j] * base[r * kb + i];
      best[j] = Math.max(best[j], Math.abs(dot));
    }
  }
  return best;
}

/** Counts intruders from precomputed left singular vectors. */
export function intrudersFromVectors(
  ft: Float64Array,
  k: number,
  base: Float64Array,
  kb: number,
  m: number,
  threshold: number,
): IntruderResult {
  const maxSimilarity = maxCosines(ft, k, base, kb, m);
  const indices = maxSimilarity.flatMap((s, j) => (s < threshold ? [j] : []));
  return { count: indices.length, k, kBase: kb, threshold, maxSimilarity, indices };
}

/** Intruder dimensions of W' = W + ΔW against W; both row-major [m, n]. */
export function intruderDimensions(
  base: ArrayLike<number>,
  merged: ArrayLike<number>,
  m: number,
  n: number,
  opts: IntruderOptions = {},
): IntruderResult {
  const k = Math.min(opts.k ?? 10, m, n);
  const kBase = Math.min(opts.kBase ?? 50, m, n);
  const ft = randomizedSvd(merged, m, n, k, opts);
  const b = randomizedSvd(base, m, n, kBase, opts);
  return intrudersFromVectors(ft.u, k, b.u, kBase, m, opts.threshold ?? 0.5);
}
