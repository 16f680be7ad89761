// `mora demo` (npm run demo): generates a tiny LLaMA, trains MoRA (type 6) and LoRA with equal trainable parameter
// counts on UUID memorization, and prints an accuracy table — the paper's Table 2 experiment in miniature.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseFlags, numberFlag, UsageError, type Command } from './command';
import { backendChoices, type BackendChoice, type TrainConfig } from '../protocol/trainer';
import { makeTinyModel } from '../model/tinyModel';
import { loadTokenizer } from '../model/tokenizer';
import { CausalLM } from '../model/transformer';
import { trainDefaults } from '../model/trainingConfig';
import { runTraining } from '../trainer/train';
import { evaluateUuid } from '../trainer/evaluate';
import { loadWithAdapter } from '../trainer/loadTrained';
import { releaseBackend, selectBackend } from '../trainer/backend';
import { makeUuidPairs } from '../trainer/uuid';
import { formatProgress } from './train';

// Demo defaults: small enough for a few minutes on two CPU cores, large enough that the methods separate.
const demo = {
  hidden: 64, // tiny LLaMA: 2 layers, 4 heads
  layers: 2,
  pairs: 32, // UUID pairs to memorise
  steps: 300,
  // Each method at the best peak lr of a small sweep on this model (300 steps, 32 pairs, cosine):
  // MoRA {1e-2: 42.7%, 2e-2: 50.9%, 5e-2: 13.6%}, LoRA {5e-3: 10.8%, 1e-2: 15.2%, 2e-2: 10.7%, 5e-2: 5.5%}.
  lr: 2e-2,
  loraLr: 1e-2,
  batch: 16,
  r: 8, // MoRA's r; LoRA's r is then chosen for equal parameter counts
  targets: 'all-linear',
};

const usage = `usage: mora demo [--steps N] [--pairs N] [--r N] [--lr X] [--lora-lr X] [--workdir DIR] [--backend NAME]

Generates a tiny LLaMA (hidden ${demo.hidden}, ${demo.layers} layers), trains MoRA (type 6) and LoRA with equal trainable
parameters on the UUID memorization task, and prints character-level accuracy for both.
Defaults: --steps ${demo.steps} --pairs ${demo.pairs} --r ${demo.r} --lr ${demo.lr} (MoRA) --lora-lr ${demo.loraLr}; files go to a temp folder unless --workdir.`;

/** LoRA rank whose parameter count Σ(in+out)·r is closest to MoRA's Σ r̂² on the same modules. */
async function matchedLoraRank(modelDir: string, base: Pick<TrainConfig, 'r' | 'moraType' | 'targets' | 'seed'>) {
  const m = await CausalLM.load(modelDir, { adapter: { method: 'mora', r: base.r, alpha: base.r, moraType: base.moraType, targets: base.targets, seed: base.seed } });
  try {
    const moraParams = m.trainableVariables().reduce((s, v) => s + v.size, 0);
    const perRank = m.adapterModules().reduce((s, l) => s + l.inF + l.outF, 0); // LoRA: A [r, in] + B [out, r]
    const loraR = Math.max(1, Math.round(moraParams / perRank));
    return { moraParams, loraR, loraParams: loraR * perRank };
  } finally {
    m.dispose();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(7);

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Tiny end-to-end demo: MoRA vs LoRA at equal parameters on UUID memorization',
  usage,
  async run(argv) {
    const { values: v } = parseFlags(argv, {
      steps: { type: 'string' }, pairs: { type: 'string' }, r: { type: 'string' }, lr: { type: 'string' }, 'lora-lr': { type: 'string' },
      workdir: { type: 'string' }, backend: { type: 'string' },
    });
    const steps = numberFlag(v, 'steps', demo.steps, { integer: true, min: 1 });
    const pairs = numberFlag(v, 'pairs', demo.pairs, { integer: true, min: 1 });
    const r = numberFlag(v, 'r', demo.r, { integer: true, min: 1 });
    const lr = numberFlag(v, 'lr', demo.lr, { min: 0 });
    const loraLr = numberFlag(v, 'lora-lr', demo.loraLr, { min: 0 });
    const backend = (v.backend ?? 'auto') as BackendChoice;
    if (!backendChoices.includes(backend)) throw new UsageError(`--backend must be one of ${backendChoices.join(', ')}`);
    const work = v.workdir ? path.resolve(v.workdir) : await fs.mkdtemp(path.join(os.tmpdir(), 'mora-demo-'));
    const say = (s: string) => process.stderr.write(s + '\n');

    const modelDir = path.join(work, 'tiny-llama');
    await makeTinyModel(modelDir, { arch: 'llama', hidden: demo.hidden, layers: demo.layers, heads: 4, seed: 0 });
    const chosen = await selectBackend(backend);
    say(`work folder: ${work}\nbackend: ${chosen.backend}`);
    const base: TrainConfig = {
      ...trainDefaults, model: modelDir, data: `uuid:${pairs}`, out: '', method: 'mora', moraType: 6, r, alpha: r,
      targets: demo.targets, steps, lr, warmupSteps: Math.round(steps / 20), schedule: 'cosine', batch: demo.batch,
      seq: 128, checkpointEvery: 0, backend: chosen.backend as BackendChoice, clip: 1, seed: 0,
    };
    const match = await matchedLoraRank(modelDir, base);
    say(`equal parameters: MoRA r=${r} → ${match.moraParams} trainable, LoRA r=${match.loraR} → ${match.loraParams} trainable`);

    const runs: { label: string; cfg: TrainConfig }[] = [
      { label: `MoRA type 6 (r=${r})`, cfg: { ...base, out: path.join(work, 'mora') } },
      { label: `LoRA (r=${match.loraR})`, cfg: { ...base, method: 'lora', r: match.loraR, alpha: 2 * match.loraR, lr: loraLr, out: path.join(work, 'lora') } },
    ];
    const tok = await loadTokenizer(modelDir);
    const task = makeUuidPairs(pairs);
    const rows: string[] = [];
    const baseModel = await loadWithAdapter(modelDir);
    const b = await evaluateUuid(baseModel, tok, task);
    baseModel.dispose();
    rows.push(`${'base model (no adapter)'.padEnd(22)} ${'0'.padStart(9)} ${'-'.padStart(8)} ${pct(b.charAccuracy)} ${pct(b.exactMatch)}`);
    for (const run of runs) {
      say(`\n== ${run.label}: ${steps} steps on ${pairs} UUID pairs ==`);
      const t0 = Date.now();
      let last = 0;
      const res = await runTraining(run.cfg, {
        isCancelled: () => false,
        emit: (m) => {
          if (m.type === 'train/progress' && (Date.now() - last > 2000 || m.step === m.totalSteps)) {
            last = Date.now();
            say(formatProgress(m));
          }
        },
      });
      const lm = await loadWithAdapter(modelDir, res.outDir);
      const e = await evaluateUuid(lm, tok, task);
      lm.dispose();
      say(`${run.label}: ${((Date.now() - t0) / 1000).toFixed(0)} s, sample: ${e.samples[0].predicted} (expected ${e.samples[0].expected})`);
      rows.push(`${run.label.padEnd(22)} ${String(res.trainableParams).padStart(9)} ${res.finalLoss.toFixed(4).padStart(8)} ${pct(e.charAccuracy)} ${pct(e.exactMatch)}`);
    }
    process.stdout.write(`\nUUID memorization, ${pairs} pairs, ${steps} steps, tiny LLaMA (hidden ${demo.hidden}), ${demo.targets}, backend ${chosen.backend}, lr MoRA ${lr} / LoRA ${loraLr}\n`);
    process.stdout.write(`${'method'.padEnd(22)} ${'trainable'.padStart(9)} ${'loss'.padStart(8)} ${'char acc'.padStart(7)} ${'exact'.padStart(7)}\n`);
    for (const row of rows) process.stdout.write(row + '\n');
    process.stdout.write(`\nadapters: ${path.join(work, 'mora')}  ${path.join(work, 'lora')}\n`);
    releaseBackend();
  },
};
