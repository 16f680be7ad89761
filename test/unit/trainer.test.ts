// End-to-end training on a generated tiny LLaMA, in-process: loss goes down, outputs are PEFT folders, and a run
// cancelled half-way then resumed ends exactly where an uninterrupted run ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyModel } from '../../src/model/tinyModel';
import { readAdapter } from '../../src/adapters';
import { runTraining } from '../../src/trainer/train';
import { loadCheckpoint } from '../../src/trainer/checkpoint';
import { trainDefaults } from '../../src/model/trainingConfig';
import type { TrainConfig, TrainerToHost } from '../../src/protocol/trainer';

let work = '';
let model = '';
before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'mora-train-'));
  model = path.join(work, 'model');
  await makeTinyModel(model, { arch: 'llama', hidden: 32, layers: 2, heads: 2, intermediate: 64, vocab: 320, seed: 1 });
});
after(() => rmSync(work, { recursive: true, force: true }));

// uuid:4 with batch 4: every step sees the same four sequences (a fixed batch), so the loss must fall.
const cfg = (out: string, over: Partial<TrainConfig> = {}): TrainConfig => ({
  ...trainDefaults, model, data: 'uuid:4', out, method: 'mora', moraType: 6, r: 8, targets: ['q_proj', 'v_proj'],
  steps: 12, lr: 1e-2, warmupSteps: 0, batch: 4, seq: 64, checkpointEvery: 5, backend: 'cpu', seed: 3, ...over,
});
const losses = (out: string) => readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);

test('MoRA training lowers the loss on a fixed batch and writes PEFT folders, checkpoints and metrics', async () => {
  const out = path.join(work, 'mora');
  const msgs: TrainerToHost[] = [];
  const res = await runTraining(cfg(out), { emit: (m) => msgs.push(m), isCancelled: () => false });
  assert.equal(res.steps, 12);
  assert.equal(res.cancelled, false);
  const l = losses(out);
  assert.equal(l.length, 12);
  assert.ok(l[11] < l[0] - 0.05, `loss should fall: ${l[0]} -> ${l[11]}`);
  assert.equal(res.finalLoss, l[11]);
  // hidden 32, q/v are 32×32: r̂ = floor(sqrt(64·8) + 0.5) = 23 → 22 (even for type 6); 2 layers × 2 modules.
  assert.equal(res.trainableParams, 4 * 22 * 22);
  const ad = await readAdapter(out);
  assert.equal(ad.config.use_mora, true);
  assert.equal(ad.config.mora_type, 6);
  assert.equal(ad.modules.size, 4);
  const q = ad.modules.get('model.layers.0.self_attn.q_proj')!;
  assert.deepEqual(q.aShape, [22, 22]);
  assert.ok(q.A.some((x) => x !== 0), 'M moved away from its zero init');
  const ck5 = await loadCheckpoint(path.join(out, 'checkpoint-5'));
  assert.equal(ck5.state.step, 5);
  assert.equal(ck5.optimizer.step, 5);
  assert.equal((await loadCheckpoint(path.join(out, 'checkpoint-12'))).state.lastLoss, l[11]);
  assert.deepEqual(msgs.filter((m) => m.type === 'train/checkpoint').map((m) => (m as { step: number }).step), [5, 10, 12]);
  assert.equal(msgs[0].type, 'train/ready');
  const done = msgs.at(-1)!;
  assert.equal(done.type, 'train/done');
  const p = msgs.find((m) => m.type === 'train/progress') as Extract<TrainerToHost, { type: 'train/progress' }>;
  assert.ok(p.tokensPerSec > 0 && p.memoryMb > 0 && p.backend === 'cpu' && p.totalSteps === 12);
  // A finished run is not overwritten by accident.
  await assert.rejects(runTraining(cfg(out), { emit: () => {}, isCancelled: () => false }), (e: Error & { kind?: string }) => e.kind === 'out-exists');
});

test('cancel at step 6 then --resume reaches the same final loss and weights as an uninterrupted run', async () => {
  const straight = path.join(work, 'straight');
  const opts = { method: 'lora' as const, r: 4, alpha: 8, steps: 10, warmupSteps: 2, gradAccum: 2, batch: 2, checkpointEvery: 0 };
  const a = await runTraining(cfg(straight, opts), { emit: () => {}, isCancelled: () => false });

  const split = path.join(work, 'split');
  let step = 0;
  const b1 = await runTraining(cfg(split, opts), {
    progressIntervalMs: 0,
    emit: (m) => {
      if (m.type === 'train/progress') step = m.step;
    },
    isCancelled: () => step >= 6,
  });
  assert.equal(b1.cancelled, true);
  assert.equal(b1.steps, 6);
  const b2 = await runTraining(cfg(split, { ...opts, resume: split }), { emit: () => {}, isCancelled: () => false });
  assert.equal(b2.steps, 10);
  assert.ok(Math.abs(b2.finalLoss - a.finalLoss) < 1e-5, `${b2.finalLoss} vs ${a.finalLoss}`);
  const la = losses(straight);
  const lb = losses(split);
  assert.equal(lb.length, 10);
  lb.forEach((x, i) => assert.ok(Math.abs(x - la[i]) < 1e-5, `step ${i + 1}: ${x} vs ${la[i]}`));
  const wa = (await readAdapter(straight)).modules.get('model.layers.1.self_attn.v_proj')!;
  const wb = (await readAdapter(split)).modules.get('model.layers.1.self_attn.v_proj')!;
  wa.B.forEach((x, i) => assert.ok(Math.abs(x - wb.B[i]) < 1e-6));
  // Resuming onto a different adapter layout is refused.
  await assert.rejects(
    runTraining(cfg(path.join(work, 'other'), { ...opts, r: 2, resume: split }), { emit: () => {}, isCancelled: () => false }),
    (e: Error & { kind?: string }) => e.kind === 'resume-mismatch',
  );
});

test('a tokenizer larger than the embedding is a named config error before anything is written', async () => {
  const { cpSync, writeFileSync, existsSync } = await import('node:fs');
  const small = path.join(work, 'small-vocab');
  cpSync(model, small, { recursive: true });
  const config = JSON.parse(readFileSync(path.join(small, 'config.json'), 'utf8'));
  writeFileSync(path.join(small, 'config.json'), JSON.stringify({ ...config, vocab_size: 200 }));
  const out = path.join(work, 'small-vocab-run');
  await assert.rejects(
    runTraining(cfg(out, { model: small }), { emit: () => undefined, isCancelled: () => false }),
    (e: unknown) => (e as { name?: string; kind?: string }).name === 'TrainError' && (e as { kind?: string }).kind === 'invalid-config' && /259 tokens .* vocab_size is 200/.test((e as Error).message),
  );
  assert.equal(existsSync(out), false);
});
