// Hand-checked merges: every expected number below is worked out in the comments, not produced by the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { mergeAdapters } from '../../src/adapters/merge';
import { defaultAdapterConfig, writeAdapter } from '../../src/adapters';
import { ModelWeights } from '../../src/safetensors';
import { assertClose, loraModule, moraModule, readAll, tempDir, writeBase, writeTestAdapter } from './mergeTestUtil';

const P = 'model.layers.0.mlp.proj';

test('LoRA r=1 into a 2×2 F32 base: W + (alpha/r)·B·A, untouched tensors byte-identical', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [
    { name: `${P}.weight`, dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 4] },
    { name: 'model.norm.weight', dtype: 'F32', shape: [2], values: [7, 8] },
  ]);
  // scaling = alpha / r = 2; B·A = [[1],[2]]·[[0.5, -1]] = [[0.5, -1], [1, -2]]; ΔW = [[1, -2], [2, -4]]
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 2, target_modules: ['proj'] }, [
    loraModule(P, [0.5, -1], [1, 2], [1, 2], [2, 1]),
  ]);
  const out = path.join(root, 'out');
  const res = await mergeAdapters({ base, adapters: [{ dir: adapter }], out });
  const t = await readAll(out);
  assert.deepEqual(Array.from(t.get(`${P}.weight`)!), [2, 0, 5, 0]); // [[1+1, 2-2], [3+2, 4-4]]
  assert.deepEqual(Array.from(t.get('model.norm.weight')!), [7, 8]);
  assert.equal(res.mergedTensors, 1);
  assert.deepEqual(res.sideFiles.sort(), ['config.json', 'tokenizer.json']);
  // Same header bytes as the base: names, dtypes, shapes and offsets all kept.
  const a = await fs.readFile(path.join(base, 'model.safetensors'));
  const b = await fs.readFile(path.join(out, 'model.safetensors'));
  const n = Number(a.readBigUInt64LE(0)) + 8;
  assert.deepEqual(b.subarray(0, n), a.subarray(0, n));
  await fs.rm(root, { recursive: true, force: true });
});

test('rsLoRA scaling alpha/√r and a weighted single merge (weight 0.5)', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [{ name: `${P}.weight`, dtype: 'F32', shape: [1, 2], values: [10, 20] }]);
  // r = 4, alpha = 4, rsLoRA: scaling = 4/√4 = 2. A = [[1,0],[0,1],[1,1],[0,0]], B = [[1,1,1,1]]
  // B·A = [2, 2]; ΔW = 2·[2, 2] = [4, 4]; weight 0.5 -> [12, 22]
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 4, lora_alpha: 4, use_rslora: true, target_modules: ['proj'] }, [
    loraModule(P, [1, 0, 0, 1, 1, 1, 0, 0], [4, 2], [1, 1, 1, 1], [1, 4]),
  ]);
  await mergeAdapters({ base, adapters: [{ dir: adapter, weight: 0.5 }], out: path.join(root, 'out') });
  assertClose((await readAll(path.join(root, 'out'))).get(`${P}.weight`), [12, 22], 0);
  await fs.rm(root, { recursive: true, force: true });
});

test('GPT-2 Conv1D (fan_in_fan_out): ΔW is transposed into the [in, out] base layout', async () => {
  const root = await tempDir();
  const name = 'transformer.h.0.attn.c_attn';
  const base = await writeBase(path.join(root, 'base'), [{ name: `${name}.weight`, dtype: 'F32', shape: [2, 3], values: [0, 0, 0, 0, 0, 0] }], 'gpt2');
  // r = 1, alpha = 1: B·A = [[1],[2],[3]]·[[1, 2]] = [[1,2],[2,4],[3,6]] ([out, in]); stored transposed [in, out]
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, fan_in_fan_out: true, target_modules: ['c_attn'] }, [
    loraModule(name, [1, 2], [1, 2], [1, 2, 3], [3, 1]),
  ]);
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: path.join(root, 'out') });
  assertClose((await readAll(path.join(root, 'out'))).get(`${name}.weight`), [1, 2, 3, 2, 4, 6], 0);
  await fs.rm(root, { recursive: true, force: true });
});

test('DoRA: magnitude / ‖W + ΔW‖ per output row', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [{ name: `${P}.weight`, dtype: 'F32', shape: [1, 2], values: [3, 4] }]);
  // ΔW = [1, 0]; W + ΔW = [4, 4]; ‖·‖ = √32; magnitude 2 -> 2/√32 · [4, 4] = [√2, √2]
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, use_dora: true, target_modules: ['proj'] }, [
    loraModule(P, [1, 0], [1, 2], [1], [1, 1], [2]),
  ]);
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: path.join(root, 'out') });
  assertClose((await readAll(path.join(root, 'out'))).get(`${P}.weight`), [Math.SQRT2, Math.SQRT2], 1e-6);
  await fs.rm(root, { recursive: true, force: true });
});

test('MoRA type 1 on a 4×4 identity: r=1 gives r̂=3, input padded with its first 2 columns, output repeated', async () => {
  const root = await tempDir();
  const I4 = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  const base = await writeBase(path.join(root, 'base'), [{ name: `${P}.weight`, dtype: 'F32', shape: [4, 4], values: I4 }]);
  // r̂ = floor(√(8·1) + 0.5) = 3. Padded x = [x0 x1 x2 x3 x0 x1]; chunks summed: u = [x0+x3, x1+x0, x2+x1];
  // y = M·u, repeated to 4 outputs [y0 y1 y2 y0]. So ΔW row k = [M[k,0]+M[k,1], M[k,1]+M[k,2], M[k,2], M[k,0]].
  // M = 0.5·[[1,2,3],[4,5,6],[7,8,9]] -> rows [1.5 2.5 1.5 .5], [4.5 5.5 3 2], [7.5 8.5 4.5 3.5], row 0 again.
  const M = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((v) => v / 2);
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, use_mora: true, mora_type: 1, target_modules: ['proj'] }, [
    moraModule(P, M, 3),
  ]);
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: path.join(root, 'out') });
  // I + ΔW
  const expected = [2.5, 2.5, 1.5, 0.5, 4.5, 6.5, 3, 2, 7.5, 8.5, 5.5, 3.5, 1.5, 2.5, 1.5, 1.5];
  assertClose((await readAll(path.join(root, 'out'))).get(`${P}.weight`), expected, 0);
  await fs.rm(root, { recursive: true, force: true });
});

test('MoRA type 6 on 4×4: r̂=2, chunk c rotated by angle c, ΔW = blockdiag(M, M·R(1))', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [{ name: `${P}.weight`, dtype: 'F32', shape: [4, 4], values: new Array(16).fill(0) }]);
  // r̂ = floor(√8 + .5) = 3, made even -> 2; two chunks; θ_0 = 1, chunk c rotated: [a,b] -> [a·cos c − b·sin c, b·cos c + a·sin c]
  // M = [[1,2],[3,4]]; M·R(1) = [[cos1+2sin1, 2cos1−sin1], [3cos1+4sin1, 4cos1−3sin1]]
  //   = [[2.2232442755, 0.2391336269], [4.9867908568, −0.3632037310]]
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, use_mora: true, mora_type: 6, target_modules: ['proj'] }, [
    moraModule(P, [1, 2, 3, 4], 2),
  ]);
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: path.join(root, 'out') });
  const expected = [1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 2.2232442755, 0.2391336269, 0, 0, 4.9867908568, -0.363203731];
  assertClose((await readAll(path.join(root, 'out'))).get(`${P}.weight`), expected, 1e-6);
  await fs.rm(root, { recursive: true, force: true });
});

test('BF16 base: accumulate in F32, round once (RNE) to BF16, golden bytes', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [{ name: `${P}.weight`, dtype: 'BF16', shape: [1, 3], values: [1, 1, 1] }]);
  // bf16 ulp at 1 is 2^-7. ΔW = [0.75, 0.25, 0.5]·2^-7 (r=1, alpha=1, B=[[1]]):
  //   1 + .75ulp -> 1 + 1ulp = 0x3F81; 1 + .25ulp -> 1 = 0x3F80; 1 + .5ulp: a tie, even mantissa -> 1 = 0x3F80
  const u = 2 ** -7;
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, [0.75 * u, 0.25 * u, 0.5 * u], [1, 3], [1], [1, 1]),
  ]);
  const out = path.join(root, 'out');
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out });
  const w = await ModelWeights.open(out);
  assert.equal(w.info(`${P}.weight`).dtype, 'BF16');
  assert.deepEqual(Array.from(await w.readBytes(`${P}.weight`)), [0x81, 0x3f, 0x80, 0x3f, 0x80, 0x3f]);
  await w.close();
  // --dtype f32 keeps the unrounded sum and rewrites config.json's torch_dtype.
  const out32 = path.join(root, 'out32');
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out: out32, dtype: 'f32' });
  assertClose((await readAll(out32)).get(`${P}.weight`), [1 + 0.75 * u, 1 + 0.25 * u, 1 + 0.5 * u], 0);
  assert.equal(JSON.parse(await fs.readFile(path.join(out32, 'config.json'), 'utf8')).torch_dtype, 'float32');
  await fs.rm(root, { recursive: true, force: true });
});

test('saved full tensors replace their base tensors: modules_to_save and bias="all" (PEFT keys `<module>.base_layer.bias`)', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [
    { name: `${P}.weight`, dtype: 'F32', shape: [1, 2], values: [1, 2] },
    { name: `${P}.bias`, dtype: 'F32', shape: [1], values: [5] },
    { name: 'lm_head.weight', dtype: 'F32', shape: [1, 2], values: [0, 0] },
  ]);
  // PEFT wraps a targeted Linear, so its trained bias is saved under `<module>.base_layer.bias`; merge_and_unload
  // unwraps the layer, so that bias replaces `<module>.bias`. lm_head (modules_to_save) is saved as `lm_head.weight`.
  const saved = new Map([
    [`${P}.base_layer.bias`, { shape: [1], data: Float32Array.from([-3]) }],
    ['lm_head.weight', { shape: [1, 2], data: Float32Array.from([7, 8]) }],
  ]);
  const ad = path.join(root, 'ad');
  await writeAdapter(ad, defaultAdapterConfig({ r: 1, lora_alpha: 1, bias: 'all', modules_to_save: ['lm_head'], target_modules: ['proj'] }),
    [loraModule(P, [1, 1], [1, 2], [2], [1, 1])], { saved });
  const res = await mergeAdapters({ base, adapters: [{ dir: ad }], out: path.join(root, 'out') });
  const t = await readAll(path.join(root, 'out'));
  assert.deepEqual(Array.from(t.get(`${P}.weight`)!), [3, 4]); // [1, 2] + 2·[1, 1]
  assert.deepEqual(Array.from(t.get(`${P}.bias`)!), [-3]);
  assert.deepEqual(Array.from(t.get('lm_head.weight')!), [7, 8]);
  assert.equal(res.mergedTensors, 3);
  await fs.rm(root, { recursive: true, force: true });
});
