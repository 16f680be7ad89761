// Learning-rate schedules: linear warm-up, then cosine / linear decay to zero, or constant.
// Step k is the 0-based optimizer step about to run. Warm-up uses (k + 1) so the very first update already moves
// the weights (Hugging Face's schedulers spend step 0 at lr 0); decay uses progress (k - warmup) / (total - warmup),
// which stays below 1, so the last step is not wasted at lr 0 either.

export type ScheduleKind = 'cosine' | 'linear' | 'constant';
export const scheduleKinds: readonly ScheduleKind[] = ['cosine', 'linear', 'constant'];

export interface ScheduleConfig {
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  schedule: ScheduleKind;
}

/** The learning rate used by 0-based optimizer step `k`. */
export function learningRateAt(k: number, c: ScheduleConfig): number {
  if (c.warmupSteps > 0 && k < c.warmupSteps) return (c.lr * (k + 1)) / c.warmupSteps;
  if (c.schedule === 'constant') return c.lr;
  const span = Math.max(1, c.totalSteps - c.warmupSteps);
  const progress = Math.min(1, Math.max(0, (k - c.warmupSteps) / span));
  if (c.schedule === 'linear') return c.lr * (1 - progress);
  return c.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
