// The training loop: load model + data, then per optimizer step accumulate gradients over micro-batches, clip,
// AdamW-update the adapter variables, log metrics, checkpoint, and honour cancel between steps.
// Runs in-process (tests, benches) or inside the child process (main.ts); all output goes through `emit`.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { TrainConfig, TrainerToHost } from '../protocol/trainer';
import { readModelConfig } from '../model/config';
import { loadTokenizer } from '../model/tokenizer';
import { CausalLM } from '../model/transformer';
import { selectBackend } from './backend';
import { AdamW } from './optimizer';
import { accumulateGradients, applyUpdate } from './step';
import { learningRateAt } from './schedule';
import { TrainError, validateTrainConfig } from './errors';
import { adapterConfigFor, adapterSpecFor, countParams, prepareData } from './setup';
import * as ck from './checkpoint';

export interface TrainHooks {
  emit(msg: TrainerToHost): void;
  /** Polled between optimizer steps. */
  isCancelled(): boolean;
  /** Minimum gap between train/progress messages (default 250 ms, i.e. at most 4 per second). */
  progressIntervalMs?: number;
}

export interface TrainResult {
  outDir: string;
  steps: number;
  finalLoss: number;
  cancelled: boolean;
  metricsFile: string;
  backend: string;
  trainableParams: number;
}

export async function runTraining(c: TrainConfig, hooks: TrainHooks): Promise<TrainResult> {
  validateTrainConfig(c);
  const log = (message: string, level: 'info' | 'warn' = 'info') => hooks.emit({ type: 'train/log', level, message });
  const { backend, notes } = await selectBackend(c.backend);
  hooks.emit({ type: 'train/ready', backend, notes });

  const out = path.resolve(c.out);
  const metricsFile = path.join(out, 'metrics.jsonl');
  if (!c.resume && ((await ck.listCheckpoints(out)).length > 0 || (await ck.exists(path.join(out, 'adapter_config.json'))))) {
    throw new TrainError('out-exists', `${out} already holds a training run; pass --resume ${out} to continue it or choose another --out`);
  }
  const modelConfig = await readModelConfig(c.model);
  const tok = await loadTokenizer(c.model);
  // Token ids at or past the embedding rows would fail deep inside tfjs's gather with an unnamed error.
  if (tok.vocabSize > modelConfig.vocab) {
    throw new TrainError('invalid-config', `tokenizer of ${c.model} has ${tok.vocabSize} tokens but the model's vocab_size is ${modelConfig.vocab}`);
  }
  const { sampler, notes: dataNotes } = await prepareData(c, tok);
  dataNotes.forEach((n) => log(n));
  // The output folder is created only once the inputs have been read, so a bad input leaves nothing behind.
  await fs.mkdir(out, { recursive: true });
  const stale = await ck.removeStaleStaging(out);
  if (stale) log(`removed ${stale} unfinished checkpoint folder(s) left by an interrupted run`, 'warn');
  const model = await CausalLM.load(c.model, { adapter: adapterSpecFor(c) });
  try {
    const vars = model.trainableVariables();
    if (vars.length === 0) throw new TrainError('no-trainable-params', `no module of ${c.model} matches targets ${JSON.stringify(c.targets)}`);
    const adapterConfig = adapterConfigFor(c, modelConfig);
    const trainable = countParams(vars);
    log(`${c.method === 'mora' ? `MoRA (type ${c.moraType})` : 'LoRA'} r=${c.r}: ${model.adapterModules().length} modules, ${trainable} trainable parameters, backend ${backend}`);
    const opt = new AdamW(vars.map((v) => v.size), { weightDecay: c.weightDecay });

    let step = 0;
    let micro = 0;
    let lastLoss = Number.NaN;
    if (c.resume) {
      const dir = await ck.resolveResumeDir(c.resume);
      const saved = await ck.loadCheckpoint(dir);
      // Variable names may carry a '#n' suffix when several models live in one process; compare without it.
      const key = (name: string, size: number) => `${name.replace(/#\d+$/, '')}:${size}`;
      const want = vars.map((v) => key(v.name, v.size)).join(',');
      const got = saved.state.params.map((p) => key(p.name, p.size)).join(',');
      if (want !== got) throw new TrainError('resume-mismatch', `${dir} was trained with a different adapter layout (method, r, targets or model)`);
      model.loadAdapterWeights([...saved.adapter.modules.values()]);
      opt.importState(saved.optimizer);
      step = saved.state.step;
      micro = saved.state.microBatches;
      lastLoss = saved.state.lastLoss;
      await ck.truncateMetrics(metricsFile, step);
      log(`resumed from ${dir} at step ${step}`);
    }

    const params = await Promise.all(vars.map(async (v) => new Float32Array(await v.data())));
    const tokensPerStep = sampler.batchSize * sampler.seqLen * c.gradAccum;
    const interval = hooks.progressIntervalMs ?? 250;
    const t0 = Date.now();
    const startStep = step;
    let lastEmit = 0;
    let lastSaved = -1;

    const save = async (): Promise<void> => {
      const state: ck.TrainerState = {
        format: 1, step, totalSteps: c.steps, microBatches: micro, seed: c.seed, lastLoss,
        params: vars.map((v) => ({ name: v.name, size: v.size })), config: c, savedAt: new Date().toISOString(),
      };
      const dir = await ck.saveCheckpoint(out, adapterConfig, await model.exportAdapter(), opt.exportState(), state);
      lastSaved = step;
      hooks.emit({ type: 'train/checkpoint', step, dir });
    };

    while (step < c.steps && !hooks.isCancelled()) {
      const lr = learningRateAt(step, { lr: c.lr, warmupSteps: c.warmupSteps, totalSteps: c.steps, schedule: c.schedule });
      const batches = Array.from({ length: c.gradAccum }, () => sampler.batch(micro++));
      const { loss, grads } = await accumulateGradients(model, vars, batches);
      if (!Number.isFinite(loss)) throw new TrainError('diverged', `loss became ${loss} at step ${step + 1}; lower --lr or enable --clip`);
      const gradNorm = applyUpdate(vars, params, grads, opt, lr, c.clip);
      step++;
      lastLoss = loss;

      const elapsed = (Date.now() - t0) / 1000;
      const perStep = elapsed / (step - startStep);
      const tokensPerSec = perStep > 0 ? tokensPerStep / perStep : 0;
      const line = { step, loss, lr, gradNorm, tokensPerSec: Math.round(tokensPerSec), elapsedSec: +elapsed.toFixed(3) };
      await fs.appendFile(metricsFile, JSON.stringify(line) + '\n');
      const now = Date.now();
      if (now - lastEmit >= interval || step === c.steps) {
        lastEmit = now;
        hooks.emit({
          type: 'train/progress', step, totalSteps: c.steps, loss, lr, tokensPerSec, backend,
          etaSec: Math.max(0, (c.steps - step) * perStep), memoryMb: Math.round(process.memoryUsage().rss / 2 ** 20),
        });
      }
      if (c.checkpointEvery > 0 && step % c.checkpointEvery === 0 && step < c.steps) await save();
    }

    const cancelled = step < c.steps;
    if (cancelled) log(`cancelled at step ${step} of ${c.steps}; saving`, 'warn');
    if (lastSaved !== step) await save();
    await ck.publishAdapter(ck.checkpointDir(out, step), out);
    const result: TrainResult = { outDir: out, steps: step, finalLoss: lastLoss, cancelled, metricsFile, backend, trainableParams: trainable };
    hooks.emit({ type: 'train/done', outDir: out, steps: step, finalLoss: lastLoss, cancelled, metricsFile });
    return result;
  } finally {
    model.dispose();
  }
}
