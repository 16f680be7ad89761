import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdapterError, defaultAdapterConfig, deltaWeight, isTargetModule, loraApply, loraDeltaW, loraScaling, matchesTarget,
  mergeWeight, moduleRank, moduleScaling, patternKey, type AdapterModule,
} from '../../src/adapters';
import { LoraRows } from '../../src/adapters/mergeKernels';

const f32 = (a: number[]): Float32Array => Float32Array.from(a);
const is = (kind: string) => (e: unknown) => e instanceof AdapterError && e.kind === kind;
function assertClose(actual: ArrayLike<number>, expected: number[], tol: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] ${actual[i]} vs ${expected[i]}`);
}

// r = 2, in = 3, out = 2. B·A = [[1,2,0],[3,-1,7]]:
//   row 0 = 1·[1,0,2] + 2·[0,1,-1] = [1,2,0];  row 1 = 3·[1,0,2] − 1·[0,1,-1] = [3,-1,7].
const A = f32([1, 0, 2, 0, 1, -1]); // [r=2, in=3]
const B = f32([1, 2, 3, -1]); // [out=2, r=2]
const mod = (path: string): AdapterModule => ({ path, A, aShape: [2, 3], B, bShape: [2, 2] });

test('scaling: alpha/r, and alpha/√r with rsLoRA', () => {
  assert.equal(loraScaling(16, 4, false), 4);
  assert.equal(loraScaling(16, 4, true), 8);
  assert.ok(Math.abs(loraScaling(4, 2, true) - 2.8284271247461903) < 1e-15); // 4 / √2
  assert.throws(() => loraScaling(8, 0, false), is('RankMismatch'));
});

test('loraDeltaW by hand: scaling · B·A', () => {
  assert.deepEqual([...loraDeltaW(A, B, 2, 3, 2, 2)], [2, 4, 0, 6, -2, 14]);
  // loraApply is the same map without forming ΔW: x = [1,1,1] -> 2·[3, 9] = [6, 18].
  assert.deepEqual([...loraApply(A, B, 2, 3, 2, 2, f32([1, 1, 1]), 1)], [6, 18]);
  assert.throws(() => loraDeltaW(A, B, 2, 4, 2, 1), is('ShapeMismatch'));
});

test('deltaWeight from a config: alpha/r vs rsLoRA, and fan_in_fan_out transposes', () => {
  const cfg = defaultAdapterConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'] });
  const path = 'model.layers.0.self_attn.q_proj';
  assert.deepEqual([...deltaWeight(cfg, mod(path), [2, 3])], [2, 4, 0, 6, -2, 14]); // alpha/r = 2
  const rs = defaultAdapterConfig({ r: 2, lora_alpha: 4, use_rslora: true, target_modules: ['q_proj'] });
  const k = 4 / Math.SQRT2; // 2.828427
  assertClose(deltaWeight(rs, mod(path), [2, 3]), [k, 2 * k, 0, 3 * k, -k, 7 * k], 1e-6);
  // GPT-2 Conv1D stores [in, out]: ΔW comes back as [in=3, out=2].
  const conv = defaultAdapterConfig({ r: 2, lora_alpha: 4, fan_in_fan_out: true, target_modules: ['c_attn'] });
  assert.deepEqual([...deltaWeight(conv, mod('transformer.h.0.attn.c_attn'), [3, 2])], [2, 6, 4, -2, 0, 14]);
  // A per-layer override wins over the config (PEFT forces fan_in_fan_out for Conv1D).
  assert.deepEqual([...deltaWeight(cfg, mod(path), [3, 2], { fanInFanOut: true })], [2, 6, 4, -2, 0, 14]);
  // A base weight of the wrong size is caught, not silently broadcast.
  assert.throws(() => deltaWeight(cfg, mod(path), [2, 4]), is('ShapeMismatch'));
});

test('rank_pattern / alpha_pattern: keys match (.*\\.)?key$ in insertion order', () => {
  const cfg = defaultAdapterConfig({
    r: 8,
    lora_alpha: 16,
    target_modules: ['q_proj', 'v_proj', 'up_proj'],
    rank_pattern: { q_proj: 2, 'layers\\.1\\..*': 4 },
    alpha_pattern: { 'model.layers.0.self_attn.q_proj': 4 },
  });
  const q0 = 'model.layers.0.self_attn.q_proj';
  const q1 = 'model.layers.1.self_attn.q_proj';
  assert.equal(moduleRank(cfg, q0), 2);
  assert.equal(moduleScaling(cfg, q0), 2); // 4 / 2
  assert.equal(moduleRank(cfg, q1), 2); // 'q_proj' is listed first, so it wins over 'layers\.1\..*'
  assert.equal(moduleScaling(cfg, q1), 8); // 16 / 2
  assert.equal(moduleRank(cfg, 'model.layers.1.mlp.up_proj'), 4);
  assert.equal(moduleRank(cfg, 'model.layers.0.self_attn.v_proj'), 8);
  assert.equal(moduleScaling(cfg, 'model.layers.0.self_attn.v_proj'), 2);
  // A key matches whole name components only: 'proj' does not match '...q_proj'.
  assert.equal(patternKey(['proj'], q0), undefined);
  assert.equal(patternKey(['self_attn.q_proj'], q0), 'self_attn.q_proj');
  // The config r disagrees with tensors of rank 2 once rank_pattern no longer covers the module.
  assert.throws(() => deltaWeight(cfg, mod('model.layers.0.self_attn.v_proj'), [2, 3]), is('RankMismatch'));
  assert.deepEqual([...deltaWeight(cfg, mod(q0), [2, 3])], [2, 4, 0, 6, -2, 14]);
});

test('target_modules: list (exact or .suffix), regex (full match), all-linear', () => {
  const p = 'model.layers.0.self_attn.q_proj';
  assert.equal(matchesTarget(['q_proj', 'v_proj'], p), true);
  assert.equal(matchesTarget(['q_proj'], 'model.layers.0.self_attn.qq_proj'), false);
  assert.equal(matchesTarget(['self_attn.q_proj'], p), true);
  assert.equal(matchesTarget(['q_proj'], 'q_proj'), true);
  assert.equal(matchesTarget('.*\\.(q|v)_proj', p), true);
  assert.equal(matchesTarget('q_proj', p), false); // re.fullmatch, not search
  assert.equal(matchesTarget('all-linear', 'model.layers.0.mlp.down_proj'), true);
  assert.equal(matchesTarget('all-linear', 'lm_head'), false);
  assert.equal(matchesTarget('all-linear', 'model.embed_tokens'), false);
  assert.equal(matchesTarget('all-linear', 'transformer.wte'), false);
  assert.equal(matchesTarget('all-linear', 'transformer.h.0.attn.c_attn'), true);
  assert.equal(matchesTarget('all-linear', 'model.weird', { isLinear: false }), false);
  assert.equal(matchesTarget('all-linear', 'score', { outputHead: 'score' }), false);
});

test('layers_to_transform, layers_pattern and exclude_modules as PEFT applies them', () => {
  const cfg = defaultAdapterConfig({ target_modules: ['q_proj'], layers_to_transform: [1], layers_pattern: 'layers' });
  assert.equal(isTargetModule(cfg, 'model.layers.0.self_attn.q_proj'), false);
  assert.equal(isTargetModule(cfg, 'model.layers.1.self_attn.q_proj'), true);
  assert.equal(isTargetModule(cfg, 'transformer.h.1.attn.q_proj'), false); // pattern 'layers' does not name 'h'
  const any = defaultAdapterConfig({ target_modules: ['q_proj'], layers_to_transform: 1 });
  assert.equal(isTargetModule(any, 'transformer.h.1.attn.q_proj'), true);
  // A target named in full bypasses layers_to_transform in PEFT (check_target_module_exists: `key in target_modules`).
  const full = defaultAdapterConfig({ target_modules: ['model.layers.0.self_attn.q_proj', 'v_proj'], layers_to_transform: [1] });
  assert.equal(isTargetModule(full, 'model.layers.0.self_attn.q_proj'), true);
  assert.equal(isTargetModule(full, 'model.layers.0.self_attn.v_proj'), false);
  assert.equal(isTargetModule(full, 'model.layers.1.self_attn.v_proj'), true);
  const ex = defaultAdapterConfig({ target_modules: ['q_proj', 'v_proj'], exclude_modules: ['layers.0.self_attn.v_proj'] });
  assert.equal(isTargetModule(ex, 'model.layers.0.self_attn.v_proj'), false);
  assert.equal(isTargetModule(ex, 'model.layers.1.self_attn.v_proj'), true);
});

test('mergeWeight: W + ΔW for LoRA; input W untouched', () => {
  const cfg = defaultAdapterConfig({ r: 2, lora_alpha: 2, target_modules: ['q_proj'] }); // scaling 1
  const W = f32([1, 1, 1, 1, 1, 1]);
  assert.deepEqual([...mergeWeight(cfg, mod('q_proj'), W, [2, 3])], [2, 3, 1, 4, 0, 8]);
  assert.deepEqual([...W], [1, 1, 1, 1, 1, 1]);
});

test('DoRA merge by hand on a 2×2 weight, in both layouts', () => {
  // W = [[3,1],[0,4]], A = [[1,0]], B = [[0],[1]], scaling 1: ΔW = [[0,0],[1,0]], W + ΔW = [[3,1],[1,4]].
  // Row norms (dim=1): √10, √17. magnitude = [2√10, √17] -> factors [2, 1] -> [[6,2],[1,4]].
  const cfg = defaultAdapterConfig({ r: 1, lora_alpha: 1, use_dora: true, target_modules: ['q_proj'] });
  const m: AdapterModule = { path: 'q_proj', A: f32([1, 0]), aShape: [1, 2], B: f32([0, 1]), bShape: [2, 1], magnitude: f32([2 * Math.sqrt(10), Math.sqrt(17)]) };
  assertClose(mergeWeight(cfg, m, f32([3, 1, 0, 4]), [2, 2]), [6, 2, 1, 4], 1e-6);
  // fan_in_fan_out: stored Wᵀ = [[3,0],[1,4]]; the norm runs per output column, the result is the transpose.
  const conv = { ...cfg, fan_in_fan_out: true };
  assertClose(mergeWeight(conv, m, f32([3, 0, 1, 4]), [2, 2]), [6, 1, 2, 4], 1e-6);
  // Magnitude 1 per row: each merged row is the unit vector of W + ΔW: [3,1]/√10, [1,4]/√17.
  const unit = { ...m, magnitude: f32([1, 1]) };
  assertClose(mergeWeight(cfg, unit, f32([3, 1, 0, 4]), [2, 2]), [3 / Math.sqrt(10), 1 / Math.sqrt(10), 1 / Math.sqrt(17), 4 / Math.sqrt(17)], 1e-6);
  // deltaWeight stays the directional update only.
  assert.deepEqual([...deltaWeight(cfg, m, [2, 2])], [0, 0, 1, 0]);
  // A zero row (norm 0) would be NaN: refused like PEFT's safe_merge.
  const zeroB: AdapterModule = { ...m, B: f32([0, 0]) };
  assert.throws(() => mergeWeight(cfg, zeroB, f32([0, 0, 0, 4]), [2, 2]), is('NonFinite'));
  assert.throws(() => mergeWeight(cfg, { ...m, magnitude: undefined }, f32([3, 1, 0, 4]), [2, 2]), is('TensorMissing'));
});

test('MoRA through deltaWeight/mergeWeight: scaling 1, r̂ checked against the base shape', () => {
  // type 1, base [out=3, in=3], r=1: r̂ = floor(sqrt(6) + 0.5) = 2. M = [[1,2],[3,4]], padded positions 0..3:
  // column 0 gets M[:,0] + M[:,1] (positions 0 and 3) = [3,7]; column 1 gets M[:,1] = [2,4]; column 2 gets M[:,0].
  const cfg = defaultAdapterConfig({ r: 1, lora_alpha: 64, use_mora: true, mora_type: 1, target_modules: ['q_proj'] });
  const M = f32([1, 2, 3, 4]);
  const m: AdapterModule = { path: 'q_proj', A: M, aShape: [2, 2], B: M, bShape: [2, 2] };
  assert.deepEqual([...deltaWeight(cfg, m, [3, 3])], [3, 2, 1, 7, 4, 3, 3, 2, 1]);
  assert.deepEqual([...mergeWeight(cfg, m, new Float32Array(9).fill(1), [3, 3])], [4, 3, 2, 8, 5, 4, 4, 3, 2]);
  // fan_in_fan_out: the same ΔW transposed into the [in, out] layout (the reference forgets this transpose).
  const conv = { ...cfg, fan_in_fan_out: true };
  assert.deepEqual([...deltaWeight(conv, m, [3, 3])], [3, 7, 3, 2, 4, 2, 1, 3, 1]);
  // in=3, out=5, r=1 gives r̂ = floor(sqrt(8) + 0.5) = 3, so a 2×2 M does not belong to that layer.
  assert.throws(() => deltaWeight(cfg, m, [5, 3]), is('RankMismatch'));
  // type 6 on the same 3×3 layer: r̂ = 2 as well (already even).
  const t6 = { ...cfg, mora_type: 6 as const };
  assert.equal(deltaWeight(t6, m, [3, 3]).length, 9);
  assert.throws(() => deltaWeight(cfg, { ...m, aShape: [1, 4] }, [3, 3]), is('RankMismatch'));
});

test('a non-finite lora_A: B[o,k] = 0 terms are skipped (no 0·Inf NaN), the same in loraDeltaW and the merge rows', () => {
  const A = Float32Array.of(1, Infinity, 0, 2); // [r=2, in=2]
  const B = Float32Array.of(0, 1, 3, 0); // [out=2, r=2]
  const dW = loraDeltaW(A, B, 2, 2, 2, 0.5);
  assert.deepEqual([...dW], [0, 1, 1.5, Infinity]);
  const rows = new LoraRows(A, B, 2, 2, 2, 0.5);
  assert.deepEqual([...rows.row(0), ...rows.row(1)], [...dW]);
});
