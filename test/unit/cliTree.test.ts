import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyModel } from '../../src/model/tinyModel';
import { runCli } from './cliTestUtil';

test('mora tree: r̂ and trainable parameters of a selection, from headers only', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mora-tree-'));
  try {
    const model = path.join(dir, 'm');
    // hidden 64 → intermediate 176; q/k/v/o are 64→64, gate/up 64→176, down 176→64.
    await makeTinyModel(model, { hidden: 64, layers: 2, heads: 4, seed: 0 });
    const mora = await runCli(['tree', '--model', model, '--preset', 'all-linear', '--json']);
    assert.equal(mora.code, 0, mora.err);
    const j = JSON.parse(mora.out);
    const q = j.linear.find((l: { path: string }) => l.path === 'model.layers.0.self_attn.q_proj');
    // r̂ = floor(sqrt((64+64)·8) + 0.5) = floor(32.5) = 32 → 1024 parameters in M.
    assert.deepEqual([q.in, q.out, q.rank, q.trainable, q.selected], [64, 64, 32, 1024, true]);
    const gate = j.linear.find((l: { path: string }) => l.path === 'model.layers.1.mlp.gate_proj');
    // r̂ = floor(sqrt((64+176)·8) + 0.5) = floor(44.32) = 44 (even) → 1936.
    assert.deepEqual([gate.in, gate.out, gate.rank, gate.trainable], [64, 176, 44, 1936]);
    // 2 layers × (4·1024 + 3·1936) = 19,808 of 141,632 parameters.
    assert.deepEqual([j.summary.modules, j.summary.trainable, j.summary.total], [14, 19808, 141632]);

    const lora = await runCli(['tree', '--model', model, '--targets', 'q_proj,v_proj', '--method', 'lora', '--r', '4', '--json']);
    // 2 layers × 2 modules × (64+64)·4 = 2048.
    assert.deepEqual([JSON.parse(lora.out).summary.modules, JSON.parse(lora.out).summary.trainable], [4, 2048]);

    const table = await runCli(['tree', '--model', model, '--targets', 'q_proj']);
    assert.match(table.out, /✓ model\.layers\.1\.self_attn\.q_proj +64 +64 +F32 +32 +1,024/);
    assert.match(table.out, /selected 2 \(MoRA type 6, r=8\): 2,048 trainable \(1\.446%\)/);

    const bad = await runCli(['tree', '--model', model, '--preset', 'everything']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /^mora tree: usage: --preset must be one of/);
    const missing = await runCli(['tree', '--model', path.join(dir, 'nope')]);
    assert.equal(missing.code, 2);
    assert.equal(missing.err.trim().split('\n').length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
