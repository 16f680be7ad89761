import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyModel, tinyModelLayout } from '../../src/model/tinyModel';
import { readModelConfig, parseModelConfig, ModelConfigError } from '../../src/model/config';
import { ModelWeights } from '../../src/safetensors';

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mora-tiny-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('llama tiny model: config, tensor names and shapes, exact parameter count', async () => {
  await withTmp(async (dir) => {
    const out = path.join(dir, 'm');
    await makeTinyModel(out, { arch: 'llama', hidden: 32, layers: 2, heads: 4, kvHeads: 2, seed: 1 });
    const cfg = await readModelConfig(out);
    assert.equal(cfg.arch, 'llama');
    assert.deepEqual([cfg.hidden, cfg.layers, cfg.heads, cfg.kvHeads, cfg.headDim, cfg.intermediate, cfg.vocab], [32, 2, 4, 2, 8, 88, 320]);
    assert.equal(cfg.tieEmbeddings, false);
    const w = await ModelWeights.open(out);
    try {
      assert.deepEqual(w.info('model.layers.1.self_attn.k_proj.weight').shape, [16, 32]);
      assert.deepEqual(w.info('model.layers.0.mlp.down_proj.weight').shape, [32, 88]);
      assert.deepEqual(w.info('lm_head.weight').shape, [320, 32]);
      const params = w.names().reduce((n, k) => n + w.info(k).shape.reduce((a, b) => a * b, 1), 0);
      // embed 320·32 + lm_head 320·32 + norm 32 + 2 layers × (2·32 norms + q 32·32 + k,v 2·16·32 + o 32·32 + 3·88·32)
      assert.equal(params, 2 * 320 * 32 + 32 + 2 * (64 + 1024 + 1024 + 1024 + 3 * 88 * 32));
      const q = await w.readFloat32('model.layers.0.self_attn.q_proj.weight');
      const std = Math.sqrt(q.reduce((s, x) => s + x * x, 0) / q.length);
      assert.ok(Math.abs(std - 0.02) < 0.002, `q_proj std ${std} should be ≈ 0.02`);
    } finally {
      await w.close();
    }
    const files = (await readdir(out)).sort();
    assert.deepEqual(files, ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  });
});

test('same seed gives identical bytes, another seed different weights', async () => {
  await withTmp(async (dir) => {
    await makeTinyModel(path.join(dir, 'a'), { seed: 7, hidden: 16, layers: 1, heads: 2 });
    await makeTinyModel(path.join(dir, 'b'), { seed: 7, hidden: 16, layers: 1, heads: 2 });
    await makeTinyModel(path.join(dir, 'c'), { seed: 8, hidden: 16, layers: 1, heads: 2 });
    const a = await readFile(path.join(dir, 'a', 'model.safetensors'));
    const b = await readFile(path.join(dir, 'b', 'model.safetensors'));
    const c = await readFile(path.join(dir, 'c', 'model.safetensors'));
    assert.ok(a.equals(b));
    assert.equal(a.length, c.length);
    assert.ok(!a.equals(c));
  });
});

test('sharded bf16 qwen2 model: index json covers every tensor, values match the unsharded model', async () => {
  await withTmp(async (dir) => {
    const opts = { arch: 'qwen2' as const, hidden: 32, layers: 3, heads: 4, seed: 3, dtype: 'BF16' as const };
    await makeTinyModel(path.join(dir, 'one'), opts);
    await makeTinyModel(path.join(dir, 'many'), { ...opts, maxShardBytes: 20_000 });
    const index = JSON.parse(await readFile(path.join(dir, 'many', 'model.safetensors.index.json'), 'utf8'));
    const shards = new Set(Object.values(index.weight_map as Record<string, string>));
    assert.ok(shards.size >= 3, `expected several shards, got ${shards.size}`);
    const names = tinyModelLayout(opts).specs.map((s) => s.name).sort();
    assert.deepEqual(Object.keys(index.weight_map).sort(), names);
    assert.ok(names.includes('model.layers.2.self_attn.v_proj.bias'));
    assert.ok(!names.includes('lm_head.weight'), 'qwen2 tiny models tie embeddings');
    const one = await ModelWeights.open(path.join(dir, 'one'));
    const many = await ModelWeights.open(path.join(dir, 'many'));
    try {
      let total = 0;
      for (const n of names) {
        assert.equal(many.info(n).dtype, 'BF16');
        assert.deepEqual(await many.readBytes(n), await one.readBytes(n));
        total += many.info(n).shape.reduce((a, b) => a * b, 1) * 2;
      }
      assert.equal(index.metadata.total_size, total);
    } finally {
      await one.close();
      await many.close();
    }
  });
});

test('gpt2 tiny model uses Conv1D [in, out] layout and normalises its config', async () => {
  await withTmp(async (dir) => {
    await makeTinyModel(path.join(dir, 'g'), { arch: 'gpt2', hidden: 16, layers: 1, heads: 2, seed: 0 });
    const cfg = await readModelConfig(path.join(dir, 'g'));
    assert.deepEqual([cfg.arch, cfg.hidden, cfg.intermediate, cfg.tieEmbeddings], ['gpt2', 16, 64, true]);
    const w = await ModelWeights.open(path.join(dir, 'g'));
    try {
      assert.deepEqual(w.info('transformer.h.0.attn.c_attn.weight').shape, [16, 48]);
      assert.deepEqual(w.info('transformer.h.0.mlp.c_proj.weight').shape, [64, 16]);
    } finally {
      await w.close();
    }
  });
});

test('config normalisation: qwen2 biases, GQA check, unsupported architectures are named errors', () => {
  const base = { hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16, vocab_size: 300 };
  const q = parseModelConfig({ ...base, model_type: 'qwen2', tie_word_embeddings: true });
  assert.deepEqual([q.qkvBias, q.oBias, q.kvHeads, q.ropeTheta], [true, false, 2, 10000]);
  const l = parseModelConfig({ ...base, model_type: 'llama', rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
  assert.deepEqual(l.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
  assert.throws(() => parseModelConfig({ ...base, model_type: 'bert' }), (e: unknown) => e instanceof ModelConfigError && e.kind === 'UnsupportedArchitecture');
  assert.throws(() => parseModelConfig({ ...base, model_type: 'llama', num_key_value_heads: 3 }), (e: unknown) => e instanceof ModelConfigError && e.kind === 'ConfigInvalid');
  assert.throws(() => parseModelConfig({ ...base, model_type: 'llama', hidden_size: '8' }), (e: unknown) => e instanceof ModelConfigError && e.kind === 'ConfigInvalid');
});
