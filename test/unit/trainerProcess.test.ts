// The trainer as a child process (forked from sources through tsx): typed IPC, cancel, and SIGKILL safety.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyModel } from '../../src/model/tinyModel';
import { readAdapter } from '../../src/adapters';
import { startTrainer, TrainerProcessError } from '../../src/trainer/runner';
import { loadCheckpoint } from '../../src/trainer/checkpoint';
import { trainDefaults } from '../../src/model/trainingConfig';
import type { TrainConfig, TrainerToHost } from '../../src/protocol/trainer';

let work = '';
let model = '';
before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'mora-proc-'));
  model = path.join(work, 'model');
  await makeTinyModel(model, { arch: 'llama', hidden: 32, layers: 2, heads: 2, intermediate: 64, vocab: 320, seed: 2 });
});
after(() => rmSync(work, { recursive: true, force: true }));

const cfg = (out: string, over: Partial<TrainConfig> = {}): TrainConfig => ({
  ...trainDefaults, model, data: 'uuid:8', out, method: 'mora', moraType: 1, r: 4, targets: ['q_proj'],
  steps: 500, lr: 1e-3, batch: 2, seq: 64, checkpointEvery: 2, backend: 'cpu', ...over,
});

test('SIGKILL after the first checkpoint leaves that checkpoint complete and readable', async () => {
  const out = path.join(work, 'killed');
  const t = startTrainer(cfg(out));
  const first = await new Promise<Extract<TrainerToHost, { type: 'train/checkpoint' }>>((resolve) => {
    t.onMessage((m) => {
      if (m.type === 'train/checkpoint') {
        t.kill();
        resolve(m);
      }
    });
  });
  await assert.rejects(t.done, (e: TrainerProcessError) => e.kind === 'exited' && /SIGKILL/.test(e.message));
  const ck = await loadCheckpoint(first.dir);
  assert.equal(ck.state.step, 2);
  assert.equal(ck.adapter.config.use_mora, true);
  assert.equal(ck.adapter.modules.size, 2);
  assert.equal(ck.optimizer.m.length, 2);
  // Whatever was in flight is either a complete checkpoint-<n> or a hidden staging folder, never a partial checkpoint.
  for (const name of readdirSync(out).filter((n) => n.startsWith('checkpoint-'))) await loadCheckpoint(path.join(out, name));
});

test('cancel over IPC stops between steps, saves, and reports train/done with cancelled: true', async () => {
  const out = path.join(work, 'cancelled');
  const t = startTrainer(cfg(out, { checkpointEvery: 0 }));
  const seen: string[] = [];
  t.onMessage((m) => {
    seen.push(m.type);
    if (m.type === 'train/progress' && m.step >= 1) t.cancel();
  });
  const done = await t.done;
  assert.equal(done.cancelled, true);
  assert.ok(done.steps >= 1 && done.steps < 500, `stopped at ${done.steps}`);
  assert.ok(Number.isFinite(done.finalLoss));
  assert.equal(seen[0], 'train/ready');
  assert.ok(seen.includes('train/checkpoint'));
  const ad = await readAdapter(out);
  assert.equal(ad.config.mora_type, 1);
  assert.equal((await loadCheckpoint(path.join(out, `checkpoint-${done.steps}`))).state.step, done.steps);
});

test('a bad config comes back as train/error with the trainer-side error name and kind', async () => {
  const t = startTrainer(cfg(path.join(work, 'bad'), { data: path.join(work, 'missing.jsonl') }));
  await assert.rejects(t.done, (e: TrainerProcessError) => e.kind === 'trainer-error' && e.remote?.name === 'DataError' && e.remote.kind === 'not-found');
});
