// "Train MoRA adapter" driven with arguments: a real trainer child process runs a few steps on the tiny model and
// leaves a PEFT adapter folder that the core reads back.
import * as assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { readAdapter } from '../../../src/adapters';
import { before, suite, test } from './harness';
import { tinyModel, tinyOptions } from './fixtures';
import { activateExtension, requireCommand, screenshot, workspaceDir } from './util';

// Small enough for a busy 2-core CI box: 3 steps of batch 2 × 64 tokens on the uuid task (a uuid line needs ~50 byte tokens), pure-JS backend.
const steps = 3;

suite('train', () => {
  let model = '';
  before(async () => {
    await activateExtension();
    model = await tinyModel();
  });

  test('mora.trainAdapter with arguments runs 3 steps and writes a readable MoRA adapter', async () => {
    await requireCommand('mora.trainAdapter');
    const out = join(workspaceDir(), 'runs', 'it-train');
    // Resolves with the output folder once the trainer child process has finished.
    const done = await vscode.commands.executeCommand('mora.trainAdapter', {
      model, data: 'uuid:4', out, method: 'mora', moraType: 6, r: 8, targets: ['q_proj', 'v_proj'],
      steps, batch: 2, seq: 64, lr: 1e-3, warmupSteps: 0, checkpointEvery: 0, backend: 'cpu',
    });
    assert.equal(done, out);
    assert.ok(existsSync(join(out, 'adapter_config.json')));
    const runs = (await vscode.commands.executeCommand('mora.listRuns')) as { config: { out: string }; state: string; step: number }[];
    const run = runs.find((r) => r.config.out === out);
    assert.ok(run, 'the run is missing from mora.listRuns');
    assert.equal(run.step, steps);
    await screenshot('training-view');

    const adapter = await readAdapter(out);
    assert.equal(adapter.config.use_mora, true);
    assert.equal(adapter.config.mora_type, 6);
    const expected = [];
    for (let l = 0; l < tinyOptions.layers; l++) for (const p of ['q_proj', 'v_proj']) expected.push(`model.layers.${l}.self_attn.${p}`);
    assert.deepEqual([...adapter.modules.keys()].sort(), expected.sort());
    for (const m of adapter.modules.values()) {
      // r̂ = floor(sqrt((64 + 64)·8) + 0.5) = 32 for the tiny model's [64, 64] projections.
      assert.deepEqual(m.aShape, [32, 32]);
      assert.ok(m.A.every(Number.isFinite), `${m.path}: non-finite weights`);
    }
    // M starts at zero (PEFT's init); after 3 AdamW steps at lr 1e-3 it must have moved.
    const moved = [...adapter.modules.values()].some((m) => m.A.some((v) => v !== 0));
    assert.ok(moved, 'the adapter is still all zeros after training');

    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step?: number; loss?: number });
    const stepsLogged = metrics.filter((m) => typeof m.loss === 'number').map((m) => m.step);
    assert.equal(Math.max(...(stepsLogged as number[])), steps);
    assert.ok(metrics.every((m) => m.loss === undefined || Number.isFinite(m.loss)));
  }, 180_000);
});
