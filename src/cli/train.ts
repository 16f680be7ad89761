// `mora train`: builds a TrainConfig from flags, runs it in the trainer child process and prints throttled progress.
import * as path from 'node:path';
import { parseFlags, requireFlag, numberFlag, UsageError, type Command } from './command';
import { backendChoices, type BackendChoice, type TrainConfig, type TrainerToHost } from '../protocol/trainer';
import { trainDefaults } from '../model/trainingConfig';
import { scheduleKinds, type ScheduleKind } from '../trainer/schedule';
import { startTrainer, TrainerProcessError } from '../trainer/runner';
import { validateTrainConfig } from '../trainer/errors';

const d = trainDefaults;

export const usage = `usage: mora train --model DIR --data FILE|uuid:N --out DIR [flags]

Trains a MoRA or LoRA adapter; writes a PEFT adapter folder, checkpoint-<step> folders and metrics.jsonl to --out.

  --model DIR            Hugging Face model folder (config.json, *.safetensors, tokenizer.json)
  --data FILE|uuid:N     .jsonl (text | prompt/completion | instruction/input/output), .txt, or uuid:N
  --out DIR              output adapter folder
  --method mora|lora     adapter type (default ${d.method})
  --mora-type 1|6        MoRA operators: 1 sharing, 6 RoPE rotation (default ${d.moraType})
  --r N                  LoRA rank / MoRA r for r̂ (default ${d.r})
  --alpha X              LoRA alpha (default ${d.alpha}; MoRA uses scaling 1)
  --targets LIST         comma list of module names, a regex, or all-linear (default ${(d.targets as string[]).join(',')})
  --steps N              optimizer steps (default ${d.steps})
  --lr X                 peak learning rate (default ${d.lr})
  --warmup N             warm-up steps (default ${d.warmupSteps})
  --schedule KIND        cosine | linear | constant (default ${d.schedule})
  --weight-decay X       AdamW decoupled weight decay (default ${d.weightDecay})
  --clip X               global gradient-norm clip, 0 = off (default ${d.clip})
  --batch N              sequences per micro-batch (default ${d.batch})
  --grad-accum N         micro-batches per optimizer step (default ${d.gradAccum})
  --seq N                max tokens per sequence (default ${d.seq})
  --seed N               init and data-order seed (default ${d.seed})
  --checkpoint-every N   save checkpoint-<step> every N steps, 0 = only at the end (default ${d.checkpointEvery})
  --resume DIR           continue from a checkpoint (or the latest one in DIR)
  --backend NAME         ${backendChoices.join(' | ')} (default ${d.backend})
  --skip-bad-lines       skip malformed JSONL lines (counted) instead of failing
  --quiet                no progress lines

Ctrl-C once cancels after the current step and saves; twice kills the trainer.`;

const flagSpec = {
  model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, method: { type: 'string' },
  'mora-type': { type: 'string' }, r: { type: 'string' }, alpha: { type: 'string' }, targets: { type: 'string' },
  steps: { type: 'string' }, lr: { type: 'string' }, warmup: { type: 'string' }, schedule: { type: 'string' },
  'weight-decay': { type: 'string' }, clip: { type: 'string' }, batch: { type: 'string' }, 'grad-accum': { type: 'string' },
  seq: { type: 'string' }, seed: { type: 'string' }, 'checkpoint-every': { type: 'string' }, resume: { type: 'string' },
  backend: { type: 'string' }, 'skip-bad-lines': { type: 'boolean' }, quiet: { type: 'boolean' },
} as const;

/** "q_proj,v_proj" → list; "all-linear" or anything with regex characters stays a string (PEFT semantics). */
export function parseTargets(s: string): string[] | string {
  if (s === 'all-linear' || /[\\^$*+?()[\]{}|]/.test(s)) return s;
  const list = s.split(',').map((x) => x.trim()).filter(Boolean);
  if (list.length === 0) throw new UsageError('--targets is empty');
  return list;
}

/** Flags → TrainConfig (validated). Exported for the demo and tests. */
export function trainConfigFromFlags(argv: string[]): { config: TrainConfig; quiet: boolean } {
  const { values: v } = parseFlags(argv, flagSpec);
  const method = (v.method ?? d.method) as string;
  if (method !== 'mora' && method !== 'lora') throw new UsageError(`--method must be mora or lora, got '${method}'`);
  const moraType = numberFlag(v, 'mora-type', d.moraType, { integer: true });
  if (moraType !== 1 && moraType !== 6) throw new UsageError(`--mora-type must be 1 or 6, got ${moraType}`);
  const schedule = (v.schedule ?? d.schedule) as ScheduleKind;
  if (!scheduleKinds.includes(schedule)) throw new UsageError(`--schedule must be one of ${scheduleKinds.join(', ')}`);
  const backend = (v.backend ?? d.backend) as BackendChoice;
  if (!backendChoices.includes(backend)) throw new UsageError(`--backend must be one of ${backendChoices.join(', ')}`);
  const config: TrainConfig = {
    model: path.resolve(requireFlag(v, 'model')),
    data: /^uuid:/.test(requireFlag(v, 'data')) ? (v.data as string) : path.resolve(v.data as string),
    out: path.resolve(requireFlag(v, 'out')),
    method,
    moraType,
    r: numberFlag(v, 'r', d.r, { integer: true, min: 1 }),
    alpha: numberFlag(v, 'alpha', d.alpha, { min: 0 }),
    targets: v.targets ? parseTargets(v.targets) : d.targets,
    steps: numberFlag(v, 'steps', d.steps, { integer: true, min: 1 }),
    lr: numberFlag(v, 'lr', d.lr, { min: 0 }),
    warmupSteps: numberFlag(v, 'warmup', d.warmupSteps, { integer: true, min: 0 }),
    schedule,
    weightDecay: numberFlag(v, 'weight-decay', d.weightDecay, { min: 0 }),
    clip: numberFlag(v, 'clip', d.clip, { min: 0 }),
    batch: numberFlag(v, 'batch', d.batch, { integer: true, min: 1 }),
    gradAccum: numberFlag(v, 'grad-accum', d.gradAccum, { integer: true, min: 1 }),
    seq: numberFlag(v, 'seq', d.seq, { integer: true, min: 2 }),
    seed: numberFlag(v, 'seed', d.seed, { integer: true, min: 0 }),
    checkpointEvery: numberFlag(v, 'checkpoint-every', d.checkpointEvery, { integer: true, min: 0 }),
    resume: v.resume ? path.resolve(v.resume) : undefined,
    backend,
    skipBadLines: !!v['skip-bad-lines'],
  };
  try {
    validateTrainConfig(config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { config, quiet: !!v.quiet };
}

/** One human line per progress message. */
export function formatProgress(m: Extract<TrainerToHost, { type: 'train/progress' }>): string {
  const eta = m.etaSec >= 60 ? `${Math.floor(m.etaSec / 60)}m${Math.round(m.etaSec % 60)}s` : `${m.etaSec.toFixed(0)}s`;
  return `step ${m.step}/${m.totalSteps}  loss ${m.loss.toFixed(4)}  lr ${m.lr.toExponential(2)}  ${m.tokensPerSec.toFixed(0)} tok/s  eta ${eta}  ${m.backend}  ${m.memoryMb} MB`;
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'Train a MoRA or LoRA adapter (JSONL, text or the UUID memorization task)',
  usage,
  async run(argv) {
    const { config, quiet } = trainConfigFromFlags(argv);
    const trainer = startTrainer(config);
    let lastLine = 0;
    trainer.onMessage((m) => {
      if (m.type === 'train/ready') {
        process.stderr.write(`backend: ${m.backend}\n`);
        for (const n of m.notes) process.stderr.write(`  ${n}\n`);
      } else if (m.type === 'train/log') {
        process.stderr.write(`${m.level === 'info' ? '' : `${m.level}: `}${m.message}\n`);
      } else if (m.type === 'train/progress' && !quiet && (Date.now() - lastLine >= 1000 || m.step === m.totalSteps)) {
        lastLine = Date.now();
        process.stderr.write(formatProgress(m) + '\n');
      } else if (m.type === 'train/checkpoint' && !quiet) {
        process.stderr.write(`checkpoint: ${m.dir}\n`);
      }
    });
    let interrupts = 0;
    const onSigint = () => {
      interrupts++;
      if (interrupts === 1) {
        process.stderr.write('cancelling after the current step (Ctrl-C again to kill)…\n');
        trainer.cancel();
      } else trainer.kill();
    };
    process.on('SIGINT', onSigint);
    try {
      const done = await trainer.done;
      process.stdout.write(
        `${done.cancelled ? 'cancelled' : 'done'}: ${done.steps} steps, final loss ${done.finalLoss.toFixed(4)}\nadapter: ${done.outDir}\nmetrics: ${done.metricsFile}\n`,
      );
      return done.cancelled ? 130 : 0;
    } catch (err) {
      // Report the trainer's own error (e.g. DataError bad-line) as if it had been raised here.
      if (err instanceof TrainerProcessError && err.remote) {
        throw Object.assign(new Error(err.message.slice(err.message.indexOf(': ') + 2)), { name: err.remote.name, kind: err.remote.kind });
      }
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
