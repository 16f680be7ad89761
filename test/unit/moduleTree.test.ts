import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyModel } from '../../src/model/tinyModel';
import {
  buildModuleTree,
  findNode,
  formatCount,
  isLayerStack,
  linearModules,
  moduleTrainableParams,
  moduleTypeKey,
  openModuleTree,
  presetSelection,
  sameTypeInAllLayers,
  selectionToTargets,
  summarizeSelection,
  targetsToSelection,
  type TensorMeta,
} from '../../src/model/moduleTree';

// A LLaMA-style header: hidden 64, intermediate 128, 4 heads / 2 kv heads (kv dim 32), vocab 100, 2 layers.
// Keys sorted as Python's safetensors writes them.
function llamaHeader(layers = 2): [string, TensorMeta][] {
  const t: [string, TensorMeta][] = [
    ['lm_head.weight', { dtype: 'F32', shape: [100, 64] }],
    ['model.embed_tokens.weight', { dtype: 'F32', shape: [100, 64] }],
  ];
  const ids = Array.from({ length: layers }, (_, i) => String(i)).sort(); // "0","1","10","2",...
  for (const i of ids) {
    const p = `model.layers.${i}`;
    t.push(
      [`${p}.input_layernorm.weight`, { dtype: 'F32', shape: [64] }],
      [`${p}.mlp.down_proj.weight`, { dtype: 'F32', shape: [64, 128] }],
      [`${p}.mlp.gate_proj.weight`, { dtype: 'F32', shape: [128, 64] }],
      [`${p}.mlp.up_proj.weight`, { dtype: 'F32', shape: [128, 64] }],
      [`${p}.post_attention_layernorm.weight`, { dtype: 'F32', shape: [64] }],
      [`${p}.self_attn.k_proj.weight`, { dtype: 'F32', shape: [32, 64] }],
      [`${p}.self_attn.o_proj.weight`, { dtype: 'F32', shape: [64, 64] }],
      [`${p}.self_attn.q_proj.weight`, { dtype: 'F32', shape: [64, 64] }],
      [`${p}.self_attn.v_proj.weight`, { dtype: 'F32', shape: [32, 64] }],
    );
  }
  t.push(['model.norm.weight', { dtype: 'F32', shape: [64] }]);
  return t;
}

// A GPT-2 header: Conv1D weights are [in, out]; attn.bias is the causal-mask buffer.
function gpt2Header(): [string, TensorMeta][] {
  const t: [string, TensorMeta][] = [
    ['wte.weight', { dtype: 'F16', shape: [100, 64] }],
    ['wpe.weight', { dtype: 'F16', shape: [32, 64] }],
  ];
  for (const i of ['0', '1']) {
    t.push(
      [`h.${i}.ln_1.weight`, { dtype: 'F16', shape: [64] }],
      [`h.${i}.attn.bias`, { dtype: 'F16', shape: [1, 1, 32, 32] }],
      [`h.${i}.attn.c_attn.weight`, { dtype: 'F16', shape: [64, 192] }],
      [`h.${i}.attn.c_attn.bias`, { dtype: 'F16', shape: [192] }],
      [`h.${i}.attn.c_proj.weight`, { dtype: 'F16', shape: [64, 64] }],
      [`h.${i}.mlp.c_fc.weight`, { dtype: 'F16', shape: [64, 256] }],
      [`h.${i}.mlp.c_proj.weight`, { dtype: 'F16', shape: [256, 64] }],
    );
  }
  t.push(['ln_f.weight', { dtype: 'F16', shape: [64] }]);
  return t;
}

test('tree nests by dotted path, counts parameters and sorts layer indices numerically', () => {
  const root = buildModuleTree(llamaHeader());
  assert.deepEqual(root.children.map((c) => c.name), ['lm_head', 'model']);
  const model = findNode(root, 'model')!;
  assert.deepEqual(model.children.map((c) => c.name), ['embed_tokens', 'layers', 'norm']);
  // 6400 (lm_head) + 6400 (embed) + 2 × 36992 (per layer) + 64 (norm)
  assert.equal(root.params, 86848);
  assert.equal(findNode(root, 'model.layers.0')!.params, 36992);
  assert.equal(findNode(root, 'model.layers.0.self_attn')!.linearCount, 4);
  assert.equal(root.linearCount, 14);
  assert.ok(isLayerStack(findNode(root, 'model.layers')!));
  assert.ok(!isLayerStack(model));
  const q = findNode(root, 'model.layers.1.self_attn.q_proj')!;
  assert.deepEqual(q.tensors, [{ name: 'weight', dtype: 'F32', shape: [64, 64], params: 4096 }]);

  const wide = buildModuleTree(llamaHeader(11));
  assert.deepEqual(findNode(wide, 'model.layers')!.children.map((c) => c.name), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
});

test('linear classification skips embeddings, norms and lm_head, and reads in/out per layout', () => {
  const root = buildModuleTree(llamaHeader());
  const lin = linearModules(root);
  assert.equal(lin.length, 14);
  assert.ok(lin.every((l) => !/embed|norm|lm_head/.test(l.path)));
  const k = lin.find((l) => l.path === 'model.layers.0.self_attn.k_proj')!;
  assert.deepEqual([k.inFeatures, k.outFeatures, k.fanInFanOut], [64, 32, false]);

  const g = linearModules(buildModuleTree(gpt2Header()));
  assert.deepEqual(g.map((l) => l.path), [
    'h.0.attn.c_attn', 'h.0.attn.c_proj', 'h.0.mlp.c_fc', 'h.0.mlp.c_proj',
    'h.1.attn.c_attn', 'h.1.attn.c_proj', 'h.1.mlp.c_fc', 'h.1.mlp.c_proj',
  ]);
  const cattn = g[0];
  assert.deepEqual([cattn.inFeatures, cattn.outFeatures, cattn.fanInFanOut, cattn.dtype], [64, 192, true, 'F16']);
  const mproj = g[3];
  assert.deepEqual([mproj.inFeatures, mproj.outFeatures], [256, 64]);
});

test('presets for LLaMA names', () => {
  const lin = linearModules(buildModuleTree(llamaHeader()));
  const leaf = (ps: string[]) => ps.map((p) => p.replace('model.layers.', ''));
  assert.deepEqual(leaf(presetSelection(lin, 'attention-qv')), ['0.self_attn.q_proj', '0.self_attn.v_proj', '1.self_attn.q_proj', '1.self_attn.v_proj']);
  assert.equal(presetSelection(lin, 'attention-all').length, 8);
  assert.deepEqual(leaf(presetSelection(lin, 'mlp')).slice(0, 3), ['0.mlp.down_proj', '0.mlp.gate_proj', '0.mlp.up_proj']);
  assert.equal(presetSelection(lin, 'mlp').length, 6);
  assert.equal(presetSelection(lin, 'all-linear').length, 14);
});

test('presets for GPT-2 names tell attn.c_proj from mlp.c_proj', () => {
  const lin = linearModules(buildModuleTree(gpt2Header()));
  assert.deepEqual(presetSelection(lin, 'attention-qv'), ['h.0.attn.c_attn', 'h.1.attn.c_attn']);
  assert.deepEqual(presetSelection(lin, 'attention-all'), ['h.0.attn.c_attn', 'h.0.attn.c_proj', 'h.1.attn.c_attn', 'h.1.attn.c_proj']);
  assert.deepEqual(presetSelection(lin, 'mlp'), ['h.0.mlp.c_fc', 'h.0.mlp.c_proj', 'h.1.mlp.c_fc', 'h.1.mlp.c_proj']);
});

test('same module type in all layers', () => {
  const lin = linearModules(buildModuleTree(llamaHeader(3)));
  assert.equal(moduleTypeKey('model.layers.12.self_attn.q_proj'), 'model.layers.*.self_attn.q_proj');
  assert.deepEqual(sameTypeInAllLayers(lin, 'model.layers.1.mlp.up_proj'), [
    'model.layers.0.mlp.up_proj', 'model.layers.1.mlp.up_proj', 'model.layers.2.mlp.up_proj',
  ]);
});

test('selection ↔ PEFT target_modules round trip uses the shortest unambiguous suffix', () => {
  const lin = linearModules(buildModuleTree(llamaHeader(11)));
  const qv = new Set(presetSelection(lin, 'attention-qv'));
  assert.deepEqual(selectionToTargets(lin, qv), ['q_proj', 'v_proj']);
  // Only layer 0's q_proj: '.0.self_attn.q_proj' must not also catch layer 10.
  const one = new Set(['model.layers.0.self_attn.q_proj']);
  assert.deepEqual(selectionToTargets(lin, one), ['0.self_attn.q_proj']);
  assert.deepEqual(targetsToSelection(lin, ['0.self_attn.q_proj']), ['model.layers.0.self_attn.q_proj']);
  assert.deepEqual(new Set(targetsToSelection(lin, selectionToTargets(lin, qv))), qv);
  assert.equal(targetsToSelection(lin, 'all-linear').length, lin.length);
  assert.deepEqual(targetsToSelection(lin, 'model\\.layers\\.(0|1)\\.mlp\\.down_proj'), [
    'model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj',
  ]);
  assert.deepEqual(selectionToTargets(lin, new Set()), []);

  const g = linearModules(buildModuleTree(gpt2Header()));
  const att = new Set(presetSelection(g, 'attention-all'));
  assert.deepEqual(selectionToTargets(g, att), ['c_attn', 'attn.c_proj']);
  assert.deepEqual(new Set(targetsToSelection(g, ['c_attn', 'attn.c_proj'])), att);
});

test('trainable parameter counts: MoRA r̂² per module, LoRA (in+out)·r, exact numbers', () => {
  const root = buildModuleTree(llamaHeader());
  const lin = linearModules(root);
  const byName = (n: string) => lin.find((l) => l.path === `model.layers.0.${n}`)!;
  // q: in 64 out 64, r=8 → r̂ = floor(sqrt(1024)+0.5) = 32 → 1024
  assert.equal(moduleTrainableParams(byName('self_attn.q_proj'), { method: 'mora', r: 8, moraType: 6 }), 1024);
  // k: in 64 out 32 → floor(sqrt(768)+0.5) = 28 → 784
  assert.equal(moduleTrainableParams(byName('self_attn.k_proj'), { method: 'mora', r: 8, moraType: 6 }), 784);
  // gate: in 64 out 128 → floor(sqrt(1536)+0.5) = 39; type 6 makes it even (38) → 1444; type 1 keeps 39 → 1521
  assert.equal(moduleTrainableParams(byName('mlp.gate_proj'), { method: 'mora', r: 8, moraType: 6 }), 1444);
  assert.equal(moduleTrainableParams(byName('mlp.gate_proj'), { method: 'mora', r: 8, moraType: 1 }), 1521);
  assert.equal(moduleTrainableParams(byName('mlp.gate_proj'), { method: 'lora', r: 8, moraType: 6 }), 1536);

  const qv = new Set(presetSelection(lin, 'attention-qv'));
  const mora = summarizeSelection(root, qv, { method: 'mora', r: 8, moraType: 6 });
  assert.deepEqual({ ...mora, percent: undefined }, { modules: 4, trainable: 3616, total: 86848, percent: undefined });
  assert.ok(Math.abs(mora.percent - (3616 / 86848) * 100) < 1e-12);
  assert.equal(summarizeSelection(root, qv, { method: 'lora', r: 8, moraType: 6 }).trainable, 3584);
  const all = new Set(presetSelection(lin, 'all-linear'));
  assert.equal(summarizeSelection(root, all, { method: 'mora', r: 8, moraType: 6 }).trainable, 15896);
  assert.equal(summarizeSelection(root, all, { method: 'mora', r: 8, moraType: 1 }).trainable, 16358);
  assert.equal(summarizeSelection(root, all, { method: 'lora', r: 8, moraType: 1 }).trainable, 16384);

  const g = buildModuleTree(gpt2Header());
  // c_attn in 64 out 192, r=4: LoRA (64+192)·4 = 1024; MoRA floor(sqrt(1024)+0.5) = 32 → 1024
  const gq = new Set(presetSelection(linearModules(g), 'attention-qv'));
  assert.equal(summarizeSelection(g, gq, { method: 'lora', r: 4, moraType: 6 }).trainable, 2048);
  assert.equal(summarizeSelection(g, gq, { method: 'mora', r: 4, moraType: 6 }).trainable, 2048);
});

test('formatCount', () => {
  assert.deepEqual([formatCount(999), formatCount(12345), formatCount(1234567), formatCount(7.6e9)], ['999', '12.3K', '1.23M', '7.60B']);
});

test('openModuleTree: a weights file in a model folder opens the folder; a lone file stays a file', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'mora-tree-'));
  try {
    const dir = path.join(root, 'tiny');
    await makeTinyModel(dir, { arch: 'llama', hidden: 16, layers: 2, heads: 2, seed: 3 });
    const fromDir = await openModuleTree(dir);
    const fromFile = await openModuleTree(path.join(dir, 'model.safetensors'));
    // Training reads config.json and the tokenizer from the folder, so the folder is what mora.json records.
    assert.equal(fromFile.dir, dir);
    assert.equal(fromDir.dir, dir);
    assert.deepEqual(fromFile.linear, fromDir.linear);
    assert.equal(fromDir.linear.length, 14); // 2 layers × q, k, v, o, gate, up, down
    const lone = path.join(root, 'loose');
    mkdirSync(lone);
    copyFileSync(path.join(dir, 'model.safetensors'), path.join(lone, 'weights.safetensors'));
    const fromLone = await openModuleTree(path.join(lone, 'weights.safetensors'));
    assert.equal(fromLone.dir, path.join(lone, 'weights.safetensors'));
    assert.equal(fromLone.linear.length, 14);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
