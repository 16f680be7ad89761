// Checkpoint folders: a PEFT adapter (adapter_config.json + adapter_model.safetensors, via writeAdapter) plus
// optimizer_state.safetensors (AdamW moments) and trainer_state.json (step, data position, config).
// A checkpoint is built in a hidden staging folder next to its final name and renamed into place only when complete,
// so a trainer killed at any moment (even SIGKILL) leaves every earlier checkpoint intact and readable.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { readAdapter, writeAdapter, type Adapter, type AdapterConfig, type AdapterModule } from '../adapters';
import { SafetensorsFile, serializeSafetensors, float32ToBytes } from '../safetensors';
import { writeFileAtomic } from '../util/atomic';
import type { TrainConfig } from '../protocol/trainer';
import type { AdamWState } from './optimizer';
import { KindError } from '../util/kindError';

export const trainerStateFile = 'trainer_state.json';
export const optimizerStateFile = 'optimizer_state.safetensors';
const stagingPrefix = '.staging-';

export class CheckpointError extends KindError<'not-found' | 'invalid' | 'mismatch'> {
  override name = 'CheckpointError';
}

/** trainer_state.json: what a resumed run needs besides weights and moments. */
export interface TrainerState {
  format: 1;
  /** Optimizer steps completed. */
  step: number;
  totalSteps: number;
  /** Micro-batches consumed; the sampler is a pure function of (seed, micro-batch), so this is the data position. */
  microBatches: number;
  seed: number;
  /** The trainable parameters in optimizer order, to refuse a resume onto a different adapter layout. */
  params: { name: string; size: number }[];
  lastLoss: number;
  config: TrainConfig;
  savedAt: string;
}

export interface CheckpointContents {
  adapter: Adapter;
  optimizer: AdamWState;
  state: TrainerState;
}

export function checkpointDir(out: string, step: number): string {
  return path.join(out, `checkpoint-${step}`);
}

export async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/** Moments as one safetensors file: `param.<i>.exp_avg` / `param.<i>.exp_avg_sq`, F32, step in the metadata. */
function optimizerBytes(s: AdamWState): Uint8Array {
  const tensors = s.m.flatMap((m, i) => [
    { name: `param.${i}.exp_avg`, dtype: 'F32' as const, shape: [m.length], data: float32ToBytes(m, 'F32') },
    { name: `param.${i}.exp_avg_sq`, dtype: 'F32' as const, shape: [m.length], data: float32ToBytes(s.v[i], 'F32') },
  ]);
  return serializeSafetensors(tensors, { format: 'mora-studio-adamw-1', step: String(s.step), params: String(s.m.length) });
}

/** Writes `<out>/checkpoint-<step>` atomically (an existing folder of that name is replaced in one rename). */
export async function saveCheckpoint(
  out: string,
  adapterConfig: AdapterConfig,
  modules: AdapterModule[],
  optimizer: AdamWState,
  state: TrainerState,
): Promise<string> {
  await fs.mkdir(out, { recursive: true });
  const target = checkpointDir(out, state.step);
  const stage = path.join(out, `${stagingPrefix}checkpoint-${state.step}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    // writeAdapter creates `stage` itself (atomically); the two extra files are then added before the final rename.
    await writeAdapter(stage, adapterConfig, modules);
    await writeFileAtomic(path.join(stage, optimizerStateFile), optimizerBytes(optimizer));
    await writeFileAtomic(path.join(stage, trainerStateFile), JSON.stringify(state, null, 2) + '\n');
    if (await exists(target)) {
      const old = `${stage}-old`;
      await fs.rename(target, old);
      await fs.rename(stage, target);
      await fs.rm(old, { recursive: true, force: true });
    } else {
      await fs.rename(stage, target);
    }
  } catch (err) {
    await fs.rm(stage, { recursive: true, force: true });
    throw err;
  }
  return target;
}

/** Copies a checkpoint's adapter files into `out` (each file replaced atomically) so `out` is itself a PEFT folder. */
export async function publishAdapter(checkpoint: string, out: string): Promise<void> {
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', trainerStateFile]) {
    await writeFileAtomic(path.join(out, f), await fs.readFile(path.join(checkpoint, f)));
  }
}

/**
 * Removes staging folders left behind by a killed trainer (never a completed checkpoint). A replaced checkpoint
 * moved aside as `<stage>-old` is complete: if the kill came before the new folder took its name, it goes back.
 */
export async function removeStaleStaging(out: string): Promise<number> {
  const names = await fs.readdir(out).catch(() => [] as string[]);
  const stale = names.filter((n) => n.startsWith(stagingPrefix));
  for (const n of stale) {
    const replaced = /^\.staging-checkpoint-(\d+)-.*-old$/.exec(n);
    const target = replaced ? checkpointDir(out, Number(replaced[1])) : undefined;
    if (target && !(await exists(target))) await fs.rename(path.join(out, n), target);
    else await fs.rm(path.join(out, n), { recursive: true, force: true });
  }
  return stale.length;
}

/**
 * Keeps the metrics.jsonl lines up to `step`: a resume from an earlier checkpoint replays the later steps. A line a
 * killed trainer left half-written is dropped rather than failing the resume.
 */
export async function truncateMetrics(file: string, step: number): Promise<void> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const kept = text.split('\n').filter((l) => {
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  await writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
}

/** Completed checkpoints in `out`, sorted by step. */
export async function listCheckpoints(out: string): Promise<{ step: number; dir: string }[]> {
  const names = await fs.readdir(out).catch(() => [] as string[]);
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: path.join(out, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** `dir` itself when it holds trainer_state.json and optimizer state, else its latest complete checkpoint-<step>. */
export async function resolveResumeDir(dir: string): Promise<string> {
  if ((await exists(path.join(dir, trainerStateFile))) && (await exists(path.join(dir, optimizerStateFile)))) return dir;
  const cks = await listCheckpoints(dir);
  for (let i = cks.length - 1; i >= 0; i--) {
    if (await exists(path.join(cks[i].dir, trainerStateFile))) return cks[i].dir;
  }
  throw new CheckpointError('not-found', `${dir} is not a checkpoint and holds no checkpoint-<step> folder`);
}

function parseState(text: string, file: string): TrainerState {
  let s: TrainerState;
  try {
    s = JSON.parse(text) as TrainerState;
  } catch (err) {
    throw new CheckpointError('invalid', `${file}: ${(err as Error).message}`);
  }
  const ok = s && s.format === 1 && Number.isInteger(s.step) && Number.isInteger(s.microBatches) && Array.isArray(s.params) && typeof s.config === 'object';
  if (!ok) throw new CheckpointError('invalid', `${file}: not a MoRA Studio trainer state (format 1)`);
  return s;
}

/** Reads a checkpoint folder written by saveCheckpoint. */
export async function loadCheckpoint(dir: string): Promise<CheckpointContents> {
  const stateFile = path.join(dir, trainerStateFile);
  const text = await fs.readFile(stateFile, 'utf8').catch(() => {
    throw new CheckpointError('not-found', `${stateFile} is missing`);
  });
  const state = parseState(text, stateFile);
  const adapter = await readAdapter(dir);
  const f = await SafetensorsFile.open(path.join(dir, optimizerStateFile));
  try {
    const n = Number(f.header.metadata?.params ?? state.params.length);
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      m.push(await f.readFloat32(`param.${i}.exp_avg`));
      v.push(await f.readFloat32(`param.${i}.exp_avg_sq`));
    }
    return { adapter, optimizer: { step: Number(f.header.metadata?.step ?? state.step), m, v }, state };
  } finally {
    await f.close();
  }
}
