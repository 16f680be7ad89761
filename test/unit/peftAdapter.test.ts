import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AdapterError, defaultAdapterConfig, deltaWeight, mergeWeight, readAdapter, writeAdapter, type AdapterModule,
} from '../../src/adapters';
import { float32ToBytes, readHeader, writeSafetensors, type Dtype } from '../../src/safetensors';

const FIX = path.join(__dirname, '..', 'fixtures', 'adapters');
const f32 = (a: number[]): Float32Array => Float32Array.from(a);
const is = (kind: string) => (e: unknown) => e instanceof AdapterError && e.kind === kind;
const c = Math.cos(1);
const s = Math.sin(1);
function assertClose(actual: ArrayLike<number>, expected: number[], tol: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] ${actual[i]} vs ${expected[i]}`);
}

async function tmpDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'mora-adapter-'));
}

/** An adapter folder built by hand: a config object and raw tensors. */
async function handMade(dir: string, config: Record<string, unknown>, tensors: { name: string; shape: number[]; data: number[]; dtype?: Dtype }[]): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify(config));
  await writeSafetensors(
    path.join(dir, 'adapter_model.safetensors'),
    tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype ?? 'F32',
      shape: t.shape,
      data: t.dtype === 'I32' ? new Uint8Array(Int32Array.from(t.data).buffer) : float32ToBytes(f32(t.data), (t.dtype ?? 'F32') as 'F32'),
    })),
  );
}

const Q = 'model.layers.0.self_attn.q_proj';
const key = (part: string): string => `base_model.model.${Q}.${part}`;
const moraCfg = { peft_type: 'LORA', r: 1, target_modules: ['q_proj'], use_mora: true, mora_type: 6 };

test('fixture tiny-mora: both M copies stored, ΔW of type 6 by hand', async () => {
  const header = await readHeader(path.join(FIX, 'tiny-mora', 'adapter_model.safetensors'));
  assert.deepEqual([...header.tensors.keys()].sort(), [key('lora_A.weight'), key('lora_B.weight'), 'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight', 'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight'].sort());
  assert.equal(header.tensors.get(key('lora_A.weight'))!.dtype, 'F32');
  const ad = await readAdapter(path.join(FIX, 'tiny-mora'), { baseShape: (p) => (p.endsWith('q_proj') ? [4, 4] : [2, 4]) });
  assert.equal(ad.config.mora_type, 6);
  const q = ad.modules.get(Q)!;
  assert.deepEqual([...q.A], [1, 2, 3, 4]);
  assert.deepEqual(q.aShape, [2, 2]);
  // r=1, base 4×4: r̂ = floor(sqrt(8) + 0.5) = 3 -> even 2. ΔW = diag(M, M·R(1)).
  assertClose(deltaWeight(ad.config, q, [4, 4]), [1, 2, 0, 0, 3, 4, 0, 0, 0, 0, c + 2 * s, 2 * c - s, 0, 0, 3 * c + 4 * s, 4 * c - 3 * s], 1e-6);
  // v_proj: out=2, in=4, M = [[0.5,-1],[0.25,2]]; ΔW keeps the first 2 of the 4 produced rows: [M, 0].
  assertClose(deltaWeight(ad.config, ad.modules.get('model.layers.0.self_attn.v_proj')!, [2, 4]), [0.5, -1, 0, 0, 0.25, 2, 0, 0], 0);
  // A 16×16 base layer would need r̂ = floor(sqrt(32) + 0.5) = 6, not 2.
  await assert.rejects(readAdapter(path.join(FIX, 'tiny-mora'), { baseShape: () => [16, 16] }), is('RankMismatch'));
});

test('fixture tiny-lora: rank_pattern gives v_proj r=1, scaling alpha/r per module', async () => {
  const ad = await readAdapter(path.join(FIX, 'tiny-lora'));
  assert.deepEqual([...deltaWeight(ad.config, ad.modules.get(Q)!, [2, 3])], [2, 4, 0, 6, -2, 14]); // 4/2 · B·A
  // v_proj: 4/1 · [[2],[-4]]·[0.5,-0.25,1] = 4 · [[1,-0.5,2],[-2,1,-4]]
  assert.deepEqual([...deltaWeight(ad.config, ad.modules.get('model.layers.0.self_attn.v_proj')!, [2, 3])], [4, -2, 8, -8, 4, -16]);
});

test('fixture tiny-dora: magnitude vector read and merged like PEFT', async () => {
  const ad = await readAdapter(path.join(FIX, 'tiny-dora'));
  const m = ad.modules.get(Q)!;
  assertClose(m.magnitude!, [2 * Math.sqrt(10), Math.sqrt(17)], 1e-6);
  assertClose(mergeWeight(ad.config, m, f32([3, 1, 0, 4]), [2, 2]), [6, 2, 1, 4], 1e-5);
});

test('read → write reproduces every fixture byte for byte', async () => {
  const root = await tmpDir();
  for (const name of ['tiny-mora', 'tiny-lora', 'tiny-dora']) {
    const ad = await readAdapter(path.join(FIX, name));
    const out = path.join(root, name);
    await writeAdapter(out, ad.config, [...ad.modules.values()]);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
      assert.deepEqual(await fs.readFile(path.join(out, f)), await fs.readFile(path.join(FIX, name, f)), `${name}/${f}`);
    }
  }
  await fs.rm(root, { recursive: true });
});

test('MoRA: either stored copy alone is enough; two different copies are refused', async () => {
  const root = await tmpDir();
  for (const part of ['lora_A.weight', 'lora_B.weight']) {
    const dir = path.join(root, part);
    await handMade(dir, moraCfg, [{ name: key(part), shape: [2, 2], data: [1, 2, 3, 4] }]);
    const m = (await readAdapter(dir, { baseShape: () => [4, 4] })).modules.get(Q)!;
    assert.deepEqual([...m.A], [1, 2, 3, 4]);
    assert.deepEqual([...m.B], [1, 2, 3, 4]);
  }
  const diff = path.join(root, 'diff');
  await handMade(diff, moraCfg, [
    { name: key('lora_A.weight'), shape: [2, 2], data: [1, 2, 3, 4] },
    { name: key('lora_B.weight'), shape: [2, 2], data: [1, 2, 3, 5] },
  ]);
  await assert.rejects(readAdapter(diff), is('MoraMatrixMismatch'));
  // Different bytes, the same values (two NaN payloads): decoded and compared as values, like PEFT's state dict.
  const nans = path.join(root, 'nans');
  await fs.mkdir(nans);
  await fs.writeFile(path.join(nans, 'adapter_config.json'), JSON.stringify(moraCfg));
  const bits = (nanBits: number) => new Uint8Array(new Uint32Array([0x3f800000, nanBits, 0x40400000, 0x40800000]).buffer);
  await writeSafetensors(path.join(nans, 'adapter_model.safetensors'), [
    { name: key('lora_A.weight'), dtype: 'F32', shape: [2, 2], data: bits(0x7fc00000) },
    { name: key('lora_B.weight'), dtype: 'F32', shape: [2, 2], data: bits(0x7fc00001) },
  ]);
  const mNan = (await readAdapter(nans, { baseShape: () => [4, 4] })).modules.get(Q)!;
  assert.equal(mNan.A, mNan.B);
  assert.equal(new Uint32Array(mNan.A.buffer, mNan.A.byteOffset, 4)[1], 0x7fc00000, 'lora_A kept bit for bit');
  // -0 and +0 are different values: refused.
  const zeros = path.join(root, 'zeros');
  await handMade(zeros, moraCfg, [
    { name: key('lora_A.weight'), shape: [2, 2], data: [1, 0, 3, 4] },
    { name: key('lora_B.weight'), shape: [2, 2], data: [1, -0, 3, 4] },
  ]);
  await assert.rejects(readAdapter(zeros, { baseShape: () => [4, 4] }), is('MoraMatrixMismatch'));
  const cfg = defaultAdapterConfig({ r: 1, use_mora: true, mora_type: 6, target_modules: ['q_proj'] });
  const bad: AdapterModule = { path: Q, A: f32([1, 2, 3, 4]), aShape: [2, 2], B: f32([0, 2, 3, 4]), bShape: [2, 2] };
  await assert.rejects(writeAdapter(path.join(root, 'w'), cfg, [bad]), is('MoraMatrixMismatch'));
  await handMade(path.join(root, 'rect'), moraCfg, [{ name: key('lora_A.weight'), shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }]);
  await assert.rejects(readAdapter(path.join(root, 'rect')), is('RankMismatch'));
  await fs.rm(root, { recursive: true });
});

test('named errors for broken folders', async () => {
  const root = await tmpDir();
  const lora = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'] };
  const A = { name: key('lora_A.weight'), shape: [2, 3], data: [1, 0, 2, 0, 1, -1] };
  const B = { name: key('lora_B.weight'), shape: [2, 2], data: [1, 2, 3, -1] };
  await fs.mkdir(path.join(root, 'empty'));
  await assert.rejects(readAdapter(path.join(root, 'empty')), is('ConfigMissing'));
  await fs.mkdir(path.join(root, 'badjson'));
  await fs.writeFile(path.join(root, 'badjson', 'adapter_config.json'), '{"r": 8,');
  await assert.rejects(readAdapter(path.join(root, 'badjson')), is('ConfigInvalid'));
  await fs.mkdir(path.join(root, 'bin'));
  await fs.writeFile(path.join(root, 'bin', 'adapter_config.json'), JSON.stringify(lora));
  await fs.writeFile(path.join(root, 'bin', 'adapter_model.bin'), 'pickle');
  await assert.rejects(readAdapter(path.join(root, 'bin')), (e: unknown) => is('WeightsMissing')(e) && /adapter_model\.bin/.test((e as Error).message));
  const cases: [string, Record<string, unknown>, Parameters<typeof handMade>[2], string][] = [
    ['noB', lora, [A], 'TensorMissing'],
    ['unknown', lora, [A, B, { name: 'base_model.model.model.norm.weight', shape: [2], data: [1, 1] }], 'UnknownKey'],
    ['embA', lora, [A, B, { name: 'base_model.model.model.embed_tokens.lora_embedding_A', shape: [2, 2], data: [1, 1, 1, 1] }], 'UnknownKey'],
    ['rank', { ...lora, r: 4 }, [A, B], 'RankMismatch'],
    ['rAB', lora, [A, { ...B, shape: [1, 4] }], 'RankMismatch'],
    ['int', lora, [A, { ...B, dtype: 'I32' }], 'BadDtype'],
    ['magNoDora', lora, [A, B, { name: key('lora_magnitude_vector'), shape: [2], data: [1, 1] }], 'UnknownKey'],
    ['doraNoMag', { ...lora, use_dora: true }, [A, B], 'TensorMissing'],
    ['magTwice', { ...lora, use_dora: true }, [A, B, { name: key('lora_magnitude_vector'), shape: [2], data: [1, 1] }, { name: key('lora_magnitude_vector.weight'), shape: [2], data: [2, 2] }], 'DuplicateKey'],
  ];
  for (const [name, cfg, tensors, kind] of cases) {
    await handMade(path.join(root, name), cfg, tensors);
    await assert.rejects(readAdapter(path.join(root, name)), is(kind), name);
  }
  // The same tensors are fine once the config is right, and base shapes are checked when given.
  await handMade(path.join(root, 'ok'), lora, [A, B]);
  assert.equal((await readAdapter(path.join(root, 'ok'), { baseShape: () => [2, 3] })).modules.size, 1);
  await assert.rejects(readAdapter(path.join(root, 'ok'), { baseShape: () => [3, 3] }), is('ShapeMismatch'));
  await fs.rm(root, { recursive: true });
});

test('F16/BF16 storage, modules_to_save tensors, atomic replace', async () => {
  const root = await tmpDir();
  const cfg = defaultAdapterConfig({ r: 1, lora_alpha: 2, target_modules: ['q_proj'], modules_to_save: ['lm_head'] });
  const m: AdapterModule = { path: Q, A: f32([0.5, -1.25, 3]), aShape: [1, 3], B: f32([0.1, 2]), bShape: [2, 1] };
  const saved = new Map([['lm_head.weight', { shape: [2, 2], data: f32([1, 2, 3, 4]) }]]);
  const dir = path.join(root, 'a');
  await writeAdapter(dir, cfg, [m], { dtype: 'F16', saved });
  const header = await readHeader(path.join(dir, 'adapter_model.safetensors'));
  assert.equal(header.tensors.get(key('lora_A.weight'))!.dtype, 'F16');
  assert.deepEqual(header.tensors.get('base_model.model.lm_head.weight')!.shape, [2, 2]);
  const back = await readAdapter(dir);
  assert.deepEqual([...back.modules.get(Q)!.A], [0.5, -1.25, 3]); // exact in F16
  assert.deepEqual([...back.modules.get(Q)!.B], [Math.fround(0.0999755859375), 2]); // 0.1 rounds to the nearest F16
  assert.deepEqual([...back.saved.get('lm_head.weight')!.data], [1, 2, 3, 4]);
  // An existing folder is never overwritten without replace; with replace the new content wins.
  await assert.rejects(writeAdapter(dir, cfg, [m]), /refusing to overwrite/);
  assert.equal((await readHeader(path.join(dir, 'adapter_model.safetensors'))).tensors.get(key('lora_A.weight'))!.dtype, 'F16');
  await writeAdapter(dir, cfg, [m], { dtype: 'BF16', replace: true });
  assert.equal((await readHeader(path.join(dir, 'adapter_model.safetensors'))).tensors.get(key('lora_A.weight'))!.dtype, 'BF16');
  assert.deepEqual([...(await readAdapter(dir)).modules.get(Q)!.A], [0.5, -1.25, 3]);
  // A module that fails validation leaves no folder and no temp files behind.
  await assert.rejects(writeAdapter(path.join(root, 'b'), cfg, [{ ...m, aShape: [2, 3] }]), is('ShapeMismatch'));
  assert.deepEqual((await fs.readdir(root)).sort(), ['a']);
  await fs.rm(root, { recursive: true });
});
