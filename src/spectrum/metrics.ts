import type { MetricsView } from '../protocol/spectrum';
// Scalar summaries of a singular-value spectrum. Every function takes σ sorted descending; singular values that
// are known to be exactly zero by structure may be left out (they change none of these numbers).

const EPS = 2.220446049250313e-16;

export interface MetricOptions {
  /** ΔW is rows × cols; used for the numerical-rank tolerance. */
  rows: number;
  cols: number;
  /** k for "energy captured by the top-k" (default 8). */
  topK?: number;
  /** Threshold for the σ count (default 0.1, as the MoRA paper's Figure 5). */
  threshold?: number;
  /**
   * Absolute tolerance for the numerical rank. Default: max(rows, cols) · eps(float64) · σ_max, the convention of
   * LAPACK-based tools (numpy.linalg.matrix_rank), which matches the float64 accuracy of the routines here.
   */
  rankTol?: number;
}

/** The per-module metrics; the wire type of the spectrum protocol is the same shape, documented there. */
export type SpectrumMetrics = MetricsView;

export function frobeniusFromSigma(sigma: ArrayLike<number>): number {
  let s2 = 0;
  for (let i = 0; i < sigma.length; i++) s2 += sigma[i] * sigma[i];
  return Math.sqrt(s2);
}

/** Numerical rank: the number of σ strictly above `tol`. */
export function numericalRank(sigma: ArrayLike<number>, tol: number): number {
  let n = 0;
  for (let i = 0; i < sigma.length; i++) if (sigma[i] > tol) n++;
  return n;
}

/** Roy & Vetterli's effective rank exp(−Σ p_i ln p_i) with p_i = σ_i / ‖σ‖₁ (terms with p_i = 0 contribute 0). */
export function effectiveRank(sigma: ArrayLike<number>): number {
  let l1 = 0;
  for (let i = 0; i < sigma.length; i++) l1 += sigma[i];
  if (l1 === 0) return 0;
  let h = 0;
  for (let i = 0; i < sigma.length; i++) {
    const p = sigma[i] / l1;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.exp(h);
}

export function stableRank(sigma: ArrayLike<number>): number {
  if (sigma.length === 0 || sigma[0] === 0) return 0;
  const f = frobeniusFromSigma(sigma);
  return (f * f) / (sigma[0] * sigma[0]);
}

export function energyTopK(sigma: ArrayLike<number>, k: number): number {
  let top = 0;
  let all = 0;
  for (let i = 0; i < sigma.length; i++) {
    const e = sigma[i] * sigma[i];
    all += e;
    if (i < k) top += e;
  }
  return all === 0 ? 0 : top / all;
}

export function countAbove(sigma: ArrayLike<number>, threshold: number): number {
  let n = 0;
  for (let i = 0; i < sigma.length; i++) if (sigma[i] > threshold) n++;
  return n;
}

/** All metrics of one spectrum. */
export function spectrumMetrics(sigma: ArrayLike<number>, opts: MetricOptions): SpectrumMetrics {
  const sigmaMax = sigma.length > 0 ? sigma[0] : 0;
  const topK = opts.topK ?? 8;
  const threshold = opts.threshold ?? 0.1;
  const rankTol = opts.rankTol ?? Math.max(opts.rows, opts.cols) * EPS * sigmaMax;
  return {
    sigmaMax,
    frobenius: frobeniusFromSigma(sigma),
    numericalRank: numericalRank(sigma, rankTol),
    rankTol,
    effectiveRank: effectiveRank(sigma),
    stableRank: stableRank(sigma),
    topK,
    energyTopK: energyTopK(sigma, topK),
    threshold,
    countAbove: countAbove(sigma, threshold),
  };
}
