import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { defaultAdapterConfig } from '../../src/adapters';
import * as ck from '../../src/trainer/checkpoint';
import { adapterSpecFromConfig } from '../../src/trainer/loadTrained';
import { TransformerError } from '../../src/model/transformer';
import type { TrainConfig } from '../../src/protocol/trainer';

const config = { model: 'm', data: 'uuid:4', out: 'o', method: 'lora', steps: 10 } as TrainConfig;
const mod = (p: string, k: number) => ({
  path: p,
  A: Float32Array.from({ length: 2 * 4 }, (_, i) => i * 0.1 + k),
  aShape: [2, 4],
  B: Float32Array.from({ length: 4 * 2 }, (_, i) => -i * 0.01 - k),
  bShape: [4, 2],
});

test('checkpoint round trip: adapter, AdamW moments and trainer state come back exactly', async () => {
  const out = mkdtempSync(path.join(tmpdir(), 'mora-ck-'));
  try {
    const cfg = defaultAdapterConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'] });
    const modules = [mod('model.layers.0.self_attn.q_proj', 1), mod('model.layers.1.self_attn.q_proj', 2)];
    const opt = { step: 3, m: [new Float32Array([0.5, -1e-9]), new Float32Array([3])], v: [new Float32Array([1e-12, 2]), new Float32Array([7])] };
    const state: ck.TrainerState = {
      format: 1, step: 3, totalSteps: 10, microBatches: 6, seed: 0, lastLoss: 1.25,
      params: [{ name: 'a', size: 2 }, { name: 'b', size: 1 }], config, savedAt: 'now',
    };
    const dir = await ck.saveCheckpoint(out, cfg, modules, opt, state);
    assert.equal(dir, path.join(out, 'checkpoint-3'));
    assert.deepEqual(readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.safetensors', 'optimizer_state.safetensors', 'trainer_state.json']);
    const back = await ck.loadCheckpoint(dir);
    assert.equal(back.state.step, 3);
    assert.equal(back.state.microBatches, 6);
    assert.equal(back.optimizer.step, 3);
    assert.deepEqual(back.optimizer.m.map((x) => Array.from(x)), opt.m.map((x) => Array.from(x)));
    assert.deepEqual(back.optimizer.v.map((x) => Array.from(x)), opt.v.map((x) => Array.from(x)));
    const q1 = back.adapter.modules.get('model.layers.1.self_attn.q_proj')!;
    assert.deepEqual(Array.from(q1.A), Array.from(modules[1].A));
    assert.deepEqual(Array.from(q1.B), Array.from(modules[1].B));
    // Saving the same step again replaces the folder in one rename; a second step adds a folder.
    await ck.saveCheckpoint(out, cfg, modules, { ...opt, step: 3 }, { ...state, lastLoss: 0.5 });
    assert.equal((await ck.loadCheckpoint(dir)).state.lastLoss, 0.5);
    await ck.saveCheckpoint(out, cfg, modules, opt, { ...state, step: 5 });
    assert.deepEqual((await ck.listCheckpoints(out)).map((c) => c.step), [3, 5]);
    assert.equal(await ck.resolveResumeDir(out), path.join(out, 'checkpoint-5'));
    assert.equal(await ck.resolveResumeDir(dir), dir);
    // A staging folder left by a killed writer is never taken for a checkpoint and is cleaned up.
    mkdirSync(path.join(out, '.staging-checkpoint-7-1-abcd'));
    writeFileSync(path.join(out, '.staging-checkpoint-7-1-abcd', 'trainer_state.json'), '{');
    assert.equal(await ck.resolveResumeDir(out), path.join(out, 'checkpoint-5'));
    assert.equal(await ck.removeStaleStaging(out), 1);
    await ck.publishAdapter(dir, out);
    assert.ok(readdirSync(out).includes('adapter_model.safetensors'));
    await assert.rejects(ck.resolveResumeDir(path.join(out, 'nothing')), (e: ck.CheckpointError) => e.kind === 'not-found');
    writeFileSync(path.join(dir, 'trainer_state.json'), '{"format":2}');
    await assert.rejects(ck.loadCheckpoint(dir), (e: ck.CheckpointError) => e.name === 'CheckpointError' && e.kind === 'invalid');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a kill between the two renames of a checkpoint replacement loses nothing: the moved-aside folder comes back', async () => {
  const out = mkdtempSync(path.join(tmpdir(), 'mora-ck-'));
  try {
    const cfg = defaultAdapterConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'] });
    const opt = { step: 4, m: [new Float32Array([1])], v: [new Float32Array([2])] };
    const state: ck.TrainerState = {
      format: 1, step: 4, totalSteps: 10, microBatches: 4, seed: 0, lastLoss: 0.75,
      params: [{ name: 'a', size: 1 }], config, savedAt: 'now',
    };
    const dir = await ck.saveCheckpoint(out, cfg, [mod('model.layers.0.self_attn.q_proj', 1)], opt, state);
    // saveCheckpoint moves the old folder to `<stage>-old` first; simulate SIGKILL right after that rename.
    const aside = path.join(out, '.staging-checkpoint-4-99-beef-old');
    renameSync(dir, aside);
    mkdirSync(path.join(out, '.staging-checkpoint-4-99-beef'));
    assert.equal(await ck.removeStaleStaging(out), 2);
    assert.deepEqual(readdirSync(out), ['checkpoint-4']);
    assert.equal((await ck.loadCheckpoint(dir)).state.lastLoss, 0.75);
    // Once the new folder has its name, a leftover `-old` is just stale.
    mkdirSync(path.join(out, '.staging-checkpoint-4-98-cafe-old'));
    assert.equal(await ck.removeStaleStaging(out), 1);
    assert.deepEqual(readdirSync(out), ['checkpoint-4']);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('truncateMetrics keeps lines up to the resumed step and drops a half-written last line', async () => {
  const out = mkdtempSync(path.join(tmpdir(), 'mora-ck-'));
  try {
    const file = path.join(out, 'metrics.jsonl');
    writeFileSync(file, '{"step":1,"loss":2}\n{"step":2,"loss":1.5}\n\n{"step":3,"loss":1}\n{"step":4,"lo');
    await ck.truncateMetrics(file, 2);
    assert.equal(readFileSync(file, 'utf8'), '{"step":1,"loss":2}\n{"step":2,"loss":1.5}\n');
    await ck.truncateMetrics(path.join(out, 'none.jsonl'), 3);
    assert.equal(readFileSync(path.join(out, 'none.jsonl'), 'utf8'), '');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('evaluation rebuilds the saved adapter with PEFT scaling (rsLoRA included) and refuses what it cannot rebuild', () => {
  const lora = adapterSpecFromConfig(defaultAdapterConfig({ r: 4, lora_alpha: 8, target_modules: ['q_proj'] }));
  assert.equal(lora.alpha / lora.r, 2); // alpha / r
  const rs = adapterSpecFromConfig(defaultAdapterConfig({ r: 4, lora_alpha: 8, use_rslora: true, target_modules: ['q_proj'] }));
  assert.equal(rs.alpha / rs.r, 4); // alpha / √r
  const mora = adapterSpecFromConfig(defaultAdapterConfig({ r: 8, lora_alpha: 8, use_mora: true, mora_type: 6, target_modules: 'all-linear' }));
  assert.deepEqual([mora.method, mora.moraType, mora.r, mora.targets], ['mora', 6, 8, 'all-linear']);
  for (const over of [{ use_dora: true }, { alpha_pattern: { q_proj: 16 } }, { rank_pattern: { q_proj: 2 } }]) {
    assert.throws(
      () => adapterSpecFromConfig(defaultAdapterConfig({ r: 4, lora_alpha: 8, target_modules: ['q_proj'], ...over })),
      (e: unknown) => e instanceof TransformerError && e.kind === 'AdapterMismatch' && e.message.includes(Object.keys(over)[0]),
    );
  }
});
