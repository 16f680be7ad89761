// Named errors of a training run; the child process forwards name/kind/message as train/error.
import type { TrainConfig } from '../protocol/trainer';
import { backendChoices } from '../protocol/trainer';
import { scheduleKinds } from './schedule';
import { KindError } from '../util/kindError';

export type TrainErrorKind = 'invalid-config' | 'out-exists' | 'resume-mismatch' | 'no-trainable-params' | 'diverged';

export class TrainError extends KindError<TrainErrorKind> {
  override name = 'TrainError';
}

/** Checks a TrainConfig from any source (CLI, extension form, IPC) before anything heavy is loaded. */
export function validateTrainConfig(c: TrainConfig): void {
  const problems: string[] = [];
  const int = (k: keyof TrainConfig, min: number) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) problems.push(`${k} must be an integer >= ${min}, got ${String(v)}`);
  };
  const pos = (k: keyof TrainConfig, allowZero: boolean) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) problems.push(`${k} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${String(v)}`);
  };
  if (!c.model) problems.push('model is required');
  if (!c.data) problems.push('data is required');
  if (!c.out) problems.push('out is required');
  if (c.method !== 'mora' && c.method !== 'lora') problems.push(`method must be mora or lora, got ${String(c.method)}`);
  if (c.moraType !== 1 && c.moraType !== 6) problems.push(`moraType must be 1 or 6, got ${String(c.moraType)}`);
  int('r', 1);
  int('steps', 1);
  int('warmupSteps', 0);
  int('batch', 1);
  int('gradAccum', 1);
  int('seq', 2);
  int('seed', 0);
  int('checkpointEvery', 0);
  pos('lr', false);
  pos('alpha', false);
  pos('weightDecay', true);
  pos('clip', true);
  if (!scheduleKinds.includes(c.schedule)) problems.push(`schedule must be one of ${scheduleKinds.join(', ')}, got ${String(c.schedule)}`);
  if (!backendChoices.includes(c.backend)) problems.push(`backend must be one of ${backendChoices.join(', ')}, got ${String(c.backend)}`);
  const t = c.targets;
  if (!(typeof t === 'string' ? t.length > 0 : Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === 'string' && x))) {
    problems.push('targets must be a non-empty list of module names, "all-linear" or a regex string');
  }
  if (problems.length) throw new TrainError('invalid-config', problems.join('; '));
}
