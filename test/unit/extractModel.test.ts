// Round trips on generated tiny models: merge a known adapter, extract it back from (merged − base), compare the
// extracted ΔW with the original one and re-merge the extracted adapter into the base.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { deltaWeight, moraRank, readAdapter, type AdapterModule, type MoraType } from '../../src/adapters';
import { extractAdapter, type ExtractOptions } from '../../src/adapters/extract';
import { mergeAdapters } from '../../src/adapters/merge';
import { makeTinyModel } from '../../src/model/tinyModel';
import { ModelWeights } from '../../src/safetensors';
import { Rng } from '../../src/util/rng';
import { readAll, tempDir, tinyLlamaBase, tinyLlamaModules, TINY_LLAMA_TARGETS, writeTestAdapter } from './mergeTestUtil';

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

async function shapesOf(dir: string): Promise<Map<string, number[]>> {
  const w = await ModelWeights.open(dir);
  const m = new Map(w.names().map((n) => [n, w.info(n).shape] as [string, number[]]));
  await w.close();
  return m;
}

const frobDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x, i) => s + (x - b[i]) ** 2, 0));

/**
 * Merges `modules` (config `cfg`) into `base`, extracts with `opts`, and measures over the adapted weights:
 * deltaErr, the largest |ΔW_extracted − ΔW_original| / max|ΔW_original|; noiseRatio, the largest
 * ‖ΔW_extracted − ΔW_original‖_F / ‖(merged − base) − ΔW_original‖_F (the fit against the rounding already in the
 * merged model); remergeErr, the largest |re-merged − merged| / max|merged|. Untouched tensors must come back bit-identical.
 */
async function roundTrip(root: string, base: string, cfg: Parameters<typeof writeTestAdapter>[1], modules: AdapterModule[], opts: Omit<ExtractOptions, 'base' | 'tuned' | 'out'>) {
  const adapter = await writeTestAdapter(path.join(root, 'adapter'), cfg, modules);
  const merged = path.join(root, 'merged');
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: merged });
  const out = path.join(root, 'extracted');
  const res = await extractAdapter({ base, tuned: merged, out, ...opts });
  const shapes = await shapesOf(base);
  const original = await readAdapter(adapter);
  const extracted = await readAdapter(out, { baseShape: (p) => shapes.get(`${p}.weight`) });
  assert.deepEqual([...extracted.modules.keys()].sort(), modules.map((m) => m.path).sort());
  const remerged = path.join(root, 'remerged');
  await mergeAdapters({ base, adapters: [{ dir: out }], out: remerged });
  const [w0, w1, w2] = await Promise.all([readAll(base), readAll(merged), readAll(remerged)]);
  let deltaErr = 0;
  let noiseRatio = 0;
  let remergeErr = 0;
  for (const m of modules) {
    const name = `${m.path}.weight`;
    const shape = shapes.get(name)!;
    // deltaWeight gives ΔW in the base layout, as the merged − base difference is.
    const want = deltaWeight(original.config, original.modules.get(m.path)!, shape);
    const got = deltaWeight(extracted.config, extracted.modules.get(m.path)!, shape);
    const observed = Float64Array.from(w1.get(name)!, (x, i) => x - w0.get(name)![i]);
    deltaErr = Math.max(deltaErr, maxDiff(got, want) / maxAbs(want));
    noiseRatio = Math.max(noiseRatio, frobDiff(got, want) / frobDiff(observed, want));
    const [a, b] = [w1.get(name)!, w2.get(name)!];
    remergeErr = Math.max(remergeErr, maxDiff(b, a) / maxAbs(a));
  }
  const adapted = new Set(modules.map((m) => `${m.path}.weight`));
  for (const [name, t] of w1) if (!adapted.has(name)) assert.deepEqual(w2.get(name), t, `${name} must be untouched`);
  if (process.env.EXTRACT_DEBUG) console.log('measured', { deltaErr, noiseRatio, remergeErr, rel: Math.max(...res.modules.map((x) => x.relError)) });
  return { res, extracted, deltaErr, noiseRatio, remergeErr, out };
}

test('LoRA r=4 merged into an F32 tiny llama comes back: B·A = ΔW within 1e-6·max|ΔW|, re-merge within 1e-6', async () => {
  const root = await tempDir('mora-extract-');
  const base = await tinyLlamaBase(path.join(root, 'base'), { layers: 2, seed: 1, dtype: 'F32' });
  // lora_alpha 8 at r = 4: scaling 2 in the original, 1 in the extracted adapter.
  const modules = tinyLlamaModules(new Rng(3), 'lora', [0, 1], 4);
  const t = await roundTrip(root, base, { r: 4, lora_alpha: 8, target_modules: TINY_LLAMA_TARGETS }, modules, { method: 'lora', r: 4 });
  // Measured 9.0e-8 and 8.8e-8: the float32 rounding of the merged weights and of the factors.
  assert.ok(t.deltaErr <= 1e-6, `ΔW error ${t.deltaErr}`);
  assert.ok(t.remergeErr <= 1e-6, `re-merge error ${t.remergeErr}`);
  const cfg = t.extracted.config;
  assert.equal(cfg.r, 4);
  assert.equal(cfg.lora_alpha, 4);
  assert.equal(cfg.use_mora, false);
  assert.deepEqual(cfg.target_modules, ['down_proj', 'q_proj', 'up_proj', 'v_proj']);
  assert.equal(cfg.base_model_name_or_path, path.resolve(base));
  // k_proj, o_proj and gate_proj of both layers are unchanged and left out.
  assert.equal(t.res.extracted, 8);
  assert.equal(t.res.modules.filter((m) => m.unchanged).length, 6);
  for (const m of t.res.modules.filter((x) => !x.unchanged)) {
    assert.equal(m.exactSvd, true);
    assert.ok(m.relError <= 1e-6, `${m.path}: ${m.relError}`);
  }
  await fs.rm(root, { recursive: true, force: true });
});

/** Random M (std 0.2) for TINY_LLAMA_TARGETS in layers 0 and 1, r = 4. */
function moraModules(rng: Rng, type: MoraType, shapes: Map<string, number[]>): AdapterModule[] {
  return [0, 1].flatMap((l) =>
    ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.up_proj', 'mlp.down_proj'].map((t) => {
      const p = `model.layers.${l}.${t}`;
      const [outF, inF] = shapes.get(`${p}.weight`)!;
      const rHat = moraRank(inF, outF, 4, type);
      const M = rng.normalArray(rHat * rHat, 0.2);
      return { path: p, A: M, aShape: [rHat, rHat], B: M, bShape: [rHat, rHat] };
    }),
  );
}

for (const type of [6, 1] as MoraType[]) {
  test(`MoRA type ${type} merged into a sharded F32 tiny llama: M recovered within 1e-6·max|M|, re-merge within 1e-6`, async () => {
    const root = await tempDir('mora-extract-');
    const base = await tinyLlamaBase(path.join(root, 'base'), { layers: 2, seed: 2, dtype: 'F32', maxShardBytes: 60_000 });
    assert.ok(await fs.stat(path.join(base, 'model.safetensors.index.json')).then(() => true, () => false), 'the base must be sharded');
    const shapes = await shapesOf(base);
    // q [48, 48], v [24, 48], up [136, 48], down [48, 136]: 48 and 136 are not multiples of r̂ (padding wraps), up's
    // 136 outputs tile the core (type 6: L = 52; type 1: r̂ = 27), q/v/down truncate it (type 6).
    const modules = moraModules(new Rng(10 + type), type, shapes);
    const t = await roundTrip(root, base, { r: 4, lora_alpha: 4, use_mora: true, mora_type: type, target_modules: TINY_LLAMA_TARGETS }, modules, {
      method: 'mora', r: 4, moraType: type,
    });
    let mErr = 0;
    for (const m of modules) mErr = Math.max(mErr, maxDiff(t.extracted.modules.get(m.path)!.A, m.A) / maxAbs(m.A));
    // Measured: M ≤ 9.1e-8 (type 6) and 5.2e-8 (type 1); ΔW and re-merge ≤ 9.1e-8 and 3.9e-8.
    assert.ok(mErr <= 1e-6, `M error ${mErr}`);
    assert.ok(t.deltaErr <= 1e-6, `ΔW error ${t.deltaErr}`);
    assert.ok(t.remergeErr <= 1e-6, `re-merge error ${t.remergeErr}`);
    assert.equal(t.extracted.config.use_mora, true);
    assert.equal(t.extracted.config.mora_type, type);
    assert.equal(t.res.extracted, 8);
    for (const m of t.res.modules.filter((x) => !x.unchanged)) assert.ok(m.relError <= 1e-6, `${m.path}: ${m.relError}`);
    await fs.rm(root, { recursive: true, force: true });
  });
}

test('BF16 tiny llama: the extracted LoRA is closer to the true ΔW than merged − base is; re-merge within one bf16 ulp of the largest weight', async () => {
  const root = await tempDir('mora-extract-');
  const base = await tinyLlamaBase(path.join(root, 'base'), { layers: 2, seed: 4, dtype: 'BF16' });
  const modules = tinyLlamaModules(new Rng(5), 'lora', [0, 1], 4);
  const t = await roundTrip(root, base, { r: 4, lora_alpha: 8, target_modules: TINY_LLAMA_TARGETS }, modules, { method: 'lora', r: 4 });
  // merged = bf16(W + ΔW) carries up to half an ulp (2^-9 relative) of rounding per value; the rank-4 fit removes the
  // part of that noise outside ΔW's subspaces. Measured: noiseRatio 0.66, ΔW error 1.8e-3·max|ΔW|, re-merge 4.8e-3
  // of max|merged| (below 2^-7, one bf16 ulp at the top binade).
  assert.ok(t.noiseRatio <= 0.8, `fit error / rounding noise = ${t.noiseRatio}`);
  assert.ok(t.deltaErr <= 4e-3, `ΔW error ${t.deltaErr}`);
  assert.ok(t.remergeErr <= 2 ** -7, `re-merge error ${t.remergeErr}`);
  for (const m of t.res.modules.filter((x) => !x.unchanged)) assert.ok(m.relError <= 5e-3, `${m.path}: ${m.relError}`);
  await fs.rm(root, { recursive: true, force: true });
});

test('GPT-2 Conv1D weights ([in, out]): the adapter gets fan_in_fan_out and re-merges to the merged model', async () => {
  const root = await tempDir('mora-extract-');
  const base = path.join(root, 'base');
  await makeTinyModel(base, { arch: 'gpt2', hidden: 32, layers: 2, heads: 4, vocab: 300, seed: 6 });
  const rng = new Rng(7);
  const modules: AdapterModule[] = [0, 1].map((l) => ({
    path: `transformer.h.${l}.attn.c_attn`, A: rng.normalArray(3 * 32, 0.3), aShape: [3, 32], B: rng.normalArray(96 * 3, 0.3), bShape: [96, 3],
  }));
  const t = await roundTrip(root, base, { r: 3, lora_alpha: 3, fan_in_fan_out: true, target_modules: ['c_attn'] }, modules, {
    method: 'lora', r: 3, targetModules: ['c_attn'],
  });
  assert.equal(t.extracted.config.fan_in_fan_out, true);
  assert.deepEqual(t.extracted.modules.get('transformer.h.0.attn.c_attn')!.aShape, [3, 32]);
  assert.ok(t.deltaErr <= 1e-6 && t.remergeErr <= 1e-6, `${t.deltaErr} ${t.remergeErr}`);
  await fs.rm(root, { recursive: true, force: true });
});
