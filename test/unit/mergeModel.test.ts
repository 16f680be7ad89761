// Merges into generated tiny models: sharding, names, dtypes and side files preserved; multi-adapter linear and TIES.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { deltaWeight, moraRank, readAdapter, type AdapterModule } from '../../src/adapters';
import { mergeAdapters } from '../../src/adapters/merge';
import { tiesCombine } from '../../src/adapters/ties';
import { makeTinyModel } from '../../src/model/tinyModel';
import { bytesToFloat32, float32ToBytes, ModelWeights } from '../../src/safetensors';
import { Rng } from '../../src/util/rng';
import { tempDir, writeTestAdapter } from './mergeTestUtil';

const layers = [0, 1];
const targets = ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj'];

/** Random MoRA or LoRA modules for every target of a llama-style tiny model (hidden 32, intermediate 88). */
function randomModules(kind: 'mora1' | 'mora6' | 'lora', seed: number, shapes: Map<string, number[]>, r: number): AdapterModule[] {
  const rng = new Rng(seed);
  const mods: AdapterModule[] = [];
  for (const l of layers) {
    for (const t of targets) {
      const p = `model.layers.${l}.${t}`;
      const [outF, inF] = shapes.get(`${p}.weight`)!;
      if (kind === 'lora') {
        mods.push({ path: p, A: rng.normalArray(r * inF, 0.1), aShape: [r, inF], B: rng.normalArray(outF * r, 0.1), bShape: [outF, r] });
      } else {
        const rHat = moraRank(inF, outF, r, kind === 'mora1' ? 1 : 6);
        const M = rng.normalArray(rHat * rHat, 0.05);
        mods.push({ path: p, A: M, aShape: [rHat, rHat], B: M, bShape: [rHat, rHat] });
      }
    }
  }
  return mods;
}

async function shapesOf(dir: string): Promise<Map<string, number[]>> {
  const w = await ModelWeights.open(dir);
  const m = new Map(w.names().map((n) => [n, w.info(n).shape] as [string, number[]]));
  await w.close();
  return m;
}

test('sharded BF16 base -> sharded BF16 output: same shard files, names, dtypes, index; values = bf16(W + ΔW)', async () => {
  const root = await tempDir();
  const base = path.join(root, 'tiny');
  await makeTinyModel(base, { arch: 'llama', hidden: 32, layers: 2, heads: 4, vocab: 300, seed: 3, dtype: 'BF16', maxShardBytes: 20_000 });
  const shapes = await shapesOf(base);
  const adapter = await writeTestAdapter(path.join(root, 'mora6'), { r: 4, lora_alpha: 4, use_mora: true, mora_type: 6, target_modules: ['q_proj', 'v_proj', 'down_proj'] },
    randomModules('mora6', 11, shapes, 4));
  const out = path.join(root, 'merged');
  const res = await mergeAdapters({ base, adapters: [{ dir: adapter }], out });
  assert.equal(res.mergedTensors, layers.length * targets.length);

  const baseFiles = (await fs.readdir(base)).sort();
  assert.ok(baseFiles.filter((f) => f.endsWith('.safetensors')).length >= 3, 'the fixture must be sharded');
  assert.deepEqual((await fs.readdir(out)).sort(), baseFiles);
  const baseIndex = JSON.parse(await fs.readFile(path.join(base, 'model.safetensors.index.json'), 'utf8'));
  const outIndex = JSON.parse(await fs.readFile(path.join(out, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(outIndex, baseIndex);

  const a = await ModelWeights.open(base);
  const b = await ModelWeights.open(out);
  const ad = await readAdapter(adapter);
  assert.deepEqual(b.names(), a.names());
  for (const n of a.names()) {
    assert.deepEqual(b.info(n), a.info(n), n);
    assert.equal(path.basename(b.shardOf(n)), path.basename(a.shardOf(n)));
    const m = ad.modules.get(n.replace(/\.weight$/, ''));
    const got = await b.readBytes(n);
    if (!m) {
      assert.deepEqual(got, await a.readBytes(n), `${n} must be copied byte for byte`);
      continue;
    }
    // Reference: decode W, add ΔW in float32, round once to bf16.
    const W = await a.readFloat32(n);
    const dW = deltaWeight(ad.config, m, a.info(n).shape);
    const want = float32ToBytes(W.map((w, i) => w + dW[i]), 'BF16');
    assert.deepEqual(got, want, `${n} merged bytes`);
    assert.notDeepEqual(got, await a.readBytes(n), `${n} must change`);
  }
  await a.close();
  await b.close();
  await fs.rm(root, { recursive: true, force: true });
});

test('F16 base keeps F16; --dtype bf16 converts every float tensor and rewrites the index total_size', async () => {
  const root = await tempDir();
  const base = path.join(root, 'tiny16');
  await makeTinyModel(base, { arch: 'qwen2', hidden: 32, layers: 2, heads: 4, vocab: 300, seed: 5, dtype: 'F16', maxShardBytes: 30_000 });
  const shapes = await shapesOf(base);
  const adapter = await writeTestAdapter(path.join(root, 'lora'), { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] },
    randomModules('lora', 2, shapes, 2));
  const keep = path.join(root, 'keep');
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: keep });
  const conv = path.join(root, 'conv');
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: conv, dtype: 'bf16' });
  const k = await ModelWeights.open(keep);
  const c = await ModelWeights.open(conv);
  for (const n of k.names()) {
    assert.equal(k.info(n).dtype, 'F16', n);
    assert.equal(c.info(n).dtype, 'BF16', n);
    // The bf16 output is the rounding of the same float32 sums, so it is within one bf16 ulp of the f16 output.
    const x = await k.readFloat32(n);
    const y = await c.readFloat32(n);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= Math.abs(x[i]) * 2 ** -7 + 1e-6, `${n}[${i}]`);
  }
  const idx = JSON.parse(await fs.readFile(path.join(conv, 'model.safetensors.index.json'), 'utf8'));
  const total = c.names().reduce((s, n) => s + (c.info(n).dataOffsets[1] - c.info(n).dataOffsets[0]), 0);
  assert.equal(idx.metadata.total_size, total);
  assert.equal(JSON.parse(await fs.readFile(path.join(conv, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  await k.close();
  await c.close();
  await fs.rm(root, { recursive: true, force: true });
});

test('two adapters: linear = W + Σ w_i ΔW_i, ties = W + TIES(ΔW_i) per tensor, in F32', async () => {
  const root = await tempDir();
  const base = path.join(root, 'tiny32');
  await makeTinyModel(base, { arch: 'llama', hidden: 32, layers: 2, heads: 4, vocab: 300, seed: 9 });
  const shapes = await shapesOf(base);
  const cfg = { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] };
  const a1 = await writeTestAdapter(path.join(root, 'a1'), cfg, randomModules('lora', 21, shapes, 4));
  const a2 = await writeTestAdapter(path.join(root, 'a2'), { ...cfg, use_mora: true, mora_type: 1 }, randomModules('mora1', 22, shapes, 4));
  const lin = path.join(root, 'lin');
  const ties = path.join(root, 'ties');
  await mergeAdapters({ base, adapters: [{ dir: a1, weight: 0.7 }, { dir: a2, weight: 1.3 }], out: lin });
  await mergeAdapters({ base, adapters: [{ dir: a1, weight: 0.7 }, { dir: a2, weight: 1.3 }], out: ties, method: 'ties', density: 0.3 });
  const [A1, A2] = [await readAdapter(a1), await readAdapter(a2)];
  const w = await ModelWeights.open(base);
  const l = await ModelWeights.open(lin);
  const t = await ModelWeights.open(ties);
  const n = 'model.layers.1.mlp.down_proj.weight';
  const m = n.replace(/\.weight$/, '');
  const W = await w.readFloat32(n);
  const d1 = deltaWeight(A1.config, A1.modules.get(m)!, shapes.get(n)!);
  const d2 = deltaWeight(A2.config, A2.modules.get(m)!, shapes.get(n)!);
  const linGot = await l.readFloat32(n);
  for (let i = 0; i < W.length; i++) assert.ok(Math.abs(linGot[i] - (W[i] + 0.7 * d1[i] + 1.3 * d2[i])) < 1e-6, `linear[${i}]`);
  const tv = tiesCombine([d1.slice(), d2.slice()], [0.7, 1.3], 0.3);
  const tiesGot = await t.readFloat32(n);
  let kept = 0;
  for (let i = 0; i < W.length; i++) {
    assert.ok(Math.abs(tiesGot[i] - (W[i] + tv[i])) < 1e-6, `ties[${i}]`);
    if (tiesGot[i] !== W[i]) kept++;
  }
  // At density .3 of two task vectors, at most 60% of the entries can change.
  assert.ok(kept > 0 && kept <= 0.6 * W.length, `ties changed ${kept} of ${W.length}`);
  // Untouched tensors are identical in both outputs.
  assert.deepEqual(bytesToFloat32(await t.readBytes('model.norm.weight'), 'F32'), await w.readFloat32('model.norm.weight'));
  await Promise.all([w.close(), l.close(), t.close()]);
  await fs.rm(root, { recursive: true, force: true });
});
