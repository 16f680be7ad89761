import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdapterError, adapterKeyToModule, defaultAdapterConfig, matchesTarget, moduleToAdapterKey, moduleToBaseWeightName,
  parseAdapterConfig, resolveBaseWeightName, serializeAdapterConfig,
} from '../../src/adapters';

const is = (kind: string) => (e: unknown) => e instanceof AdapterError && e.kind === kind;

// What PEFT 0.10 (the peft-mora fork) writes for a MoRA run, including keys this project does not interpret.
const peftMoraJson = {
  alpha_pattern: {},
  auto_mapping: null,
  base_model_name_or_path: 'meta-llama/Llama-2-7b-hf',
  bias: 'none',
  fan_in_fan_out: false,
  inference_mode: true,
  init_lora_weights: true,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_alpha: 16,
  lora_dropout: 0.05,
  megatron_config: null,
  megatron_core: 'megatron.core',
  modules_to_save: null,
  mora_type: 6,
  peft_type: 'LORA',
  r: 8,
  rank_pattern: {},
  revision: null,
  target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  task_type: 'CAUSAL_LM',
  use_dora: false,
  use_mora: true,
  use_rslora: false,
};

test('parses a peft-mora adapter_config.json and keeps unknown keys for the round trip', () => {
  const cfg = parseAdapterConfig(peftMoraJson);
  assert.equal(cfg.use_mora, true);
  assert.equal(cfg.mora_type, 6);
  assert.equal(cfg.r, 8);
  assert.equal(cfg.lora_alpha, 16);
  assert.deepEqual(cfg.target_modules, peftMoraJson.target_modules);
  assert.equal(cfg.base_model_name_or_path, 'meta-llama/Llama-2-7b-hf');
  assert.deepEqual(cfg.extra, { auto_mapping: null, loftq_config: {}, megatron_config: null, megatron_core: 'megatron.core', revision: null });
  const text = serializeAdapterConfig(cfg);
  // Same keys and values as the input, sorted like PEFT's json.dumps(sort_keys=True).
  assert.deepEqual(JSON.parse(text), peftMoraJson);
  assert.deepEqual(Object.keys(JSON.parse(text)), Object.keys(peftMoraJson).sort());
  assert.deepEqual(parseAdapterConfig(JSON.parse(text)), cfg);
});

test('missing fields take PEFT defaults; plain LoRA configs are written without MoRA keys', () => {
  const cfg = parseAdapterConfig({ peft_type: 'LORA', target_modules: 'all-linear' });
  assert.equal(cfg.r, 8);
  assert.equal(cfg.lora_alpha, 8);
  assert.equal(cfg.use_mora, false);
  assert.equal(cfg.mora_type, 1);
  assert.equal(cfg.use_rslora, false);
  assert.deepEqual(cfg.rank_pattern, {});
  const json = JSON.parse(serializeAdapterConfig(cfg));
  assert.equal('use_mora' in json, false);
  assert.equal('mora_type' in json, false);
  assert.equal('exclude_modules' in json, false);
  assert.equal(json.target_modules, 'all-linear');
  const d = defaultAdapterConfig({ r: 4, use_mora: true, mora_type: 6, extra: { revision: 'main' } });
  assert.equal(JSON.parse(serializeAdapterConfig(d)).revision, 'main');
  assert.equal(JSON.parse(serializeAdapterConfig(d)).use_mora, true);
});

test('invalid configs are ConfigInvalid with the field named', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ r: 0 }, /\br\b/],
    [{ r: '8' }, /\br\b/],
    [{ r: 2.5 }, /\br\b/],
    [{ peft_type: 'IA3' }, /peft_type/],
    [{ lora_alpha: 'x' }, /lora_alpha/],
    [{ use_mora: true, mora_type: 3 }, /mora_type/],
    [{ use_mora: true, use_dora: true }, /use_mora/],
    [{ target_modules: '(' }, /invalid regex/],
    [{ target_modules: 'x', layers_to_transform: [0] }, /layers_to_transform/],
    [{ target_modules: [1, 2] }, /target_modules/],
    [{ rank_pattern: { q_proj: 0 } }, /rank_pattern/],
    [{ alpha_pattern: { '[': 4 } }, /invalid regex/],
    [{ fan_in_fan_out: 'yes' }, /fan_in_fan_out/],
    [{ bias: 'some' }, /bias/],
    [{ lora_dropout: 1.5 }, /lora_dropout/],
  ];
  for (const [json, msg] of bad) {
    assert.throws(() => parseAdapterConfig({ target_modules: ['q_proj'], ...json }), (e: unknown) => is('ConfigInvalid')(e) && msg.test((e as Error).message), JSON.stringify(json));
  }
  assert.throws(() => parseAdapterConfig([]), is('ConfigInvalid'));
  assert.throws(() => parseAdapterConfig(null), is('ConfigInvalid'));
});

test('Python regex syntax in target_modules is accepted', () => {
  const cfg = parseAdapterConfig({ target_modules: '.*\\.(?P<name>q|v)_proj' });
  assert.equal(matchesTarget(cfg.target_modules, 'model.layers.3.self_attn.v_proj'), true);
  assert.equal(matchesTarget(cfg.target_modules, 'model.layers.3.self_attn.k_proj'), false);
});

test('PEFT keys map to module paths and base weight names', () => {
  assert.deepEqual(adapterKeyToModule('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), {
    path: 'model.layers.0.self_attn.q_proj',
    part: 'lora_A',
  });
  assert.deepEqual(adapterKeyToModule('base_model.model.transformer.h.1.attn.c_attn.lora_B.weight'), { path: 'transformer.h.1.attn.c_attn', part: 'lora_B' });
  assert.deepEqual(adapterKeyToModule('base_model.model.model.layers.0.mlp.up_proj.lora_magnitude_vector'), {
    path: 'model.layers.0.mlp.up_proj',
    part: 'lora_magnitude_vector',
  });
  assert.equal(adapterKeyToModule('base_model.model.lm_head.weight'), undefined);
  assert.equal(adapterKeyToModule('model.layers.0.q_proj.lora_A.weight'), undefined);
  assert.equal(adapterKeyToModule('base_model.model.x.lora_embedding_A'), undefined);
  assert.equal(moduleToAdapterKey('a.b', 'lora_B'), 'base_model.model.a.b.lora_B.weight');
  assert.equal(moduleToAdapterKey('a.b', 'lora_magnitude_vector'), 'base_model.model.a.b.lora_magnitude_vector');
  assert.equal(moduleToBaseWeightName('model.layers.0.self_attn.q_proj'), 'model.layers.0.self_attn.q_proj.weight');
  const names = new Set(['h.0.attn.c_attn.weight', 'model.layers.0.mlp.up_proj.weight']);
  assert.equal(resolveBaseWeightName('transformer.h.0.attn.c_attn', (n) => names.has(n)), 'h.0.attn.c_attn.weight');
  assert.equal(resolveBaseWeightName('model.layers.0.mlp.up_proj', (n) => names.has(n)), 'model.layers.0.mlp.up_proj.weight');
  assert.equal(resolveBaseWeightName('model.layers.9.mlp.up_proj', (n) => names.has(n)), undefined);
});
