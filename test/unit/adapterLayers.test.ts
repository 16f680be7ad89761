// The tfjs MoRA/LoRA layers against the float reference in src/adapters, gradient equality of the plain-matMul custom
// gradients with tfjs autodiff, and logits of an adapted model against the base model with ΔW merged in.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loraApply, loraDeltaW, moraApply, moraDeltaW, transpose2d, type AdapterModule } from '../../src/adapters';
import { LoraLayer, MoraLayer } from '../../src/model/adapterLayers';
import { frozenMatMul, mm, setCustomGradients } from '../../src/model/fastLinear';
import { CausalLM, TransformerError, type AdapterSpec } from '../../src/model/transformer';
import { float32ToBytes, ModelWeights, writeSafetensors } from '../../src/safetensors';
import { selectBackend } from '../../src/trainer/backend';
import { Rng } from '../../src/util/rng';
import { maxAbs, maxAbsDiff, tmpDir, writeTestModel } from './transformerTestUtil';

let root: Awaited<ReturnType<typeof tmpDir>>;
const dirs: Record<string, string> = {};
before(async () => {
  await selectBackend('wasm');
  root = await tmpDir('mora-adapters-');
  for (const arch of ['llama', 'gpt2'] as const) {
    dirs[arch] = path.join(root.dir, arch);
    await mkdir(dirs[arch]);
    await writeTestModel(dirs[arch], { arch, hidden: 32, layers: 2, heads: 4, kvHeads: arch === 'llama' ? 2 : undefined, vocab: 300, seed: 11, maxPositions: 16 });
  }
});
after(() => root.cleanup());

const rng = new Rng(99);

test('MoRA layer (types 1 and 6; padding, cyclic padding, truncation, tiling) equals moraApply within 1e-5', async () => {
  // [in, out, r, type]: r̂ = 16 exact / padded+tiled / 16 (type 6) tiled / truncated / r̂ = 29 > in (cyclic padding)
  const cases: [number, number, number, 1 | 6][] = [[32, 32, 4, 1], [40, 24, 4, 1], [40, 100, 2, 6], [48, 20, 4, 6], [8, 200, 4, 1], [8, 200, 4, 6]];
  for (const [inF, outF, r, type] of cases) {
    const layer = new MoraLayer(`case.${inF}.${outF}.${type}`, inF, outF, r, type);
    const rh = layer.rHat;
    const M = rng.normalArray(rh * rh, 0.3);
    layer.A.assign(tf.tensor2d(M, [rh, rh]));
    const n = 5;
    const x = rng.normalArray(n * inF);
    const got = await tf.tidy(() => layer.apply(tf.tensor2d(x, [n, inF]))).data();
    const want = moraApply(M, rh, inF, outF, type, x, n);
    const diff = maxAbsDiff(got, want);
    assert.ok(maxAbs(want) > 0.5, 'non-trivial output');
    assert.ok(diff < 1e-5, `MoRA type ${type} in=${inF} out=${outF} r̂=${rh}: max abs diff ${diff.toExponential(2)}`);
    layer.dispose();
  }
});

test('LoRA layer equals loraApply; init is seeded kaiming-uniform A, zero B; MoRA M starts at zero', async () => {
  const [inF, outF, r] = [24, 40, 4];
  const a = new LoraLayer('m.q_proj', inF, outF, r, 2, 5);
  const a2 = new LoraLayer('m.q_proj', inF, outF, r, 2, 5);
  const a3 = new LoraLayer('m.q_proj', inF, outF, r, 2, 6);
  const A0 = await a.A.data();
  assert.deepEqual(A0, await a2.A.data(), 'same seed and path, same init');
  assert.notDeepEqual(A0, await a3.A.data(), 'another seed, another init');
  assert.ok(maxAbs(A0) <= 1 / Math.sqrt(inF) && maxAbs(A0) > 0.8 / Math.sqrt(inF), 'U(−1/√in, 1/√in)');
  assert.equal(maxAbs(await a.B.data()), 0);
  const m = new MoraLayer('m.v_proj', inF, outF, 8, 6);
  assert.equal(maxAbs(await m.A.data()), 0);
  const B = rng.normalArray(outF * r);
  a.B.assign(tf.tensor2d(B, [outF, r]));
  const x = rng.normalArray(3 * inF);
  const got = await tf.tidy(() => a.apply(tf.tensor2d(x, [3, inF]))).data();
  const diff = maxAbsDiff(got, loraApply(A0 as Float32Array, B, r, inF, outF, 2, x, 3));
  assert.ok(diff < 1e-5, `LoRA max abs diff ${diff.toExponential(2)}`);
  [a, a2, a3, m].forEach((l) => l.dispose());
});

test('custom gradients (plain matMul only) equal tfjs autodiff within 1e-4: ops and a whole adapted model', async () => {
  const a = tf.tensor2d(rng.normalArray(6 * 5), [6, 5]);
  const b = tf.tensor2d(rng.normalArray(5 * 7), [5, 7]);
  const a3 = tf.tensor3d(rng.normalArray(3 * 4 * 5), [3, 4, 5]);
  const b3 = tf.tensor3d(rng.normalArray(3 * 5 * 2), [3, 5, 2]);
  const wf = tf.tensor2d(rng.normalArray(5 * 7), [5, 7]); // frozen: not differentiated by either path
  const w = { io: wf, oi: tf.transpose(wf) as tf.Tensor2D };
  const f = (p: tf.Tensor, q: tf.Tensor, p3: tf.Tensor, q3: tf.Tensor) =>
    tf.add(tf.sum(tf.sin(tf.add(mm(p as tf.Tensor2D, q as tf.Tensor2D), frozenMatMul(p as tf.Tensor2D, w)))), tf.sum(tf.cos(mm(p3 as tf.Tensor3D, q3 as tf.Tensor3D)))) as tf.Scalar;
  const grads = (on: boolean) => {
    setCustomGradients(on);
    try {
      return tf.grads(f)([a, b, a3, b3]);
    } finally {
      setCustomGradients(true);
    }
  };
  const [custom, auto] = [grads(true), grads(false)];
  for (let i = 0; i < 4; i++) {
    const diff = maxAbsDiff(await custom[i].data(), await auto[i].data());
    assert.ok(maxAbs(await auto[i].data()) > 0.1 && diff < 1e-4, `op input ${i}: max abs diff ${diff.toExponential(2)}`);
  }
  tf.dispose([a, b, a3, b3, wf, w.oi, ...custom, ...auto]);

  for (const spec of [
    { method: 'mora', moraType: 6, r: 2, alpha: 1, targets: 'all-linear', seed: 0 },
    { method: 'lora', moraType: 1, r: 2, alpha: 4, targets: ['q_proj', 'k_proj', 'down_proj'], seed: 0 },
  ] as AdapterSpec[]) {
    const model = await CausalLM.load(dirs.llama, { adapter: spec });
    model.loadAdapterWeights(randomModules(model, 0.05));
    const ids = tf.tensor2d([[1, 2, 3, 250, 4, 5], [9, 8, 7, 6, 5, 4]], [2, 6], 'int32');
    const labels = tf.tensor2d([[2, 3, 250, 4, 5, -100], [8, 7, -100, 5, 4, 3]], [2, 6], 'int32');
    const run = (on: boolean) => {
      setCustomGradients(on);
      try {
        return tf.variableGrads(() => model.loss(ids, labels), model.trainableVariables());
      } finally {
        setCustomGradients(true);
      }
    };
    const [c, u] = [run(true), run(false)];
    let worst = 0;
    for (const v of model.trainableVariables()) worst = Math.max(worst, maxAbsDiff(await c.grads[v.name].data(), await u.grads[v.name].data()));
    const scale = Math.max(...(await Promise.all(model.trainableVariables().map(async (v) => maxAbs(await u.grads[v.name].data())))));
    assert.ok(scale > 1e-3 && worst < 1e-4, `${spec.method}: gradient max abs diff ${worst.toExponential(2)} (max |grad| ${scale.toExponential(2)})`);
    tf.dispose([ids, labels, c.value, u.value, ...Object.values(c.grads), ...Object.values(u.grads)]);
    model.dispose();
  }
});

/** Random adapter tensors for every module of `model`, in PEFT layout (MoRA: B = A). */
function randomModules(model: CausalLM, std: number): AdapterModule[] {
  return model.adapterModules().map((m) => {
    const A = rng.normalArray(m.A.size, std);
    if (m.method === 'mora') return { path: m.path, A, aShape: [...m.A.shape], B: A.slice(), bShape: [...m.A.shape] };
    return { path: m.path, A, aShape: [...m.A.shape], B: rng.normalArray(m.B!.size, std), bShape: [...m.B!.shape] };
  });
}

/** Copies `base` to `out` with ΔW added to every adapted module's weight (Conv1D weights are [in, out]). */
async function writeMerged(base: string, out: string, model: CausalLM, mods: AdapterModule[]): Promise<void> {
  await mkdir(out);
  await copyFile(path.join(base, 'config.json'), path.join(out, 'config.json'));
  const spec = model.adapterSpec!;
  const byPath = new Map(mods.map((m) => [m.path, m]));
  const info = new Map(model.adapterModules().map((m) => [m.path, m]));
  const mw = await ModelWeights.open(base);
  const tensors = [];
  for (const name of mw.names()) {
    const W = await mw.readFloat32(name);
    const mod = byPath.get(name.replace(/\.weight$/, ''));
    if (mod) {
      const { inF, outF, rHat } = info.get(mod.path)!;
      let dW = spec.method === 'mora'
        ? moraDeltaW(mod.A, rHat!, inF, outF, spec.moraType)
        : loraDeltaW(mod.A, mod.B, spec.r, inF, outF, spec.alpha / spec.r); // [out, in]
      if (model.config.arch === 'gpt2') dW = transpose2d(dW, outF, inF); // -> [in, out]
      for (let i = 0; i < W.length; i++) W[i] += dW[i];
    }
    tensors.push({ name, dtype: 'F32' as const, shape: mw.info(name).shape, data: float32ToBytes(W, 'F32') });
  }
  await mw.close();
  await writeSafetensors(path.join(out, 'model.safetensors'), tensors);
}

const parityCases: [string, 'llama' | 'gpt2', AdapterSpec][] = [
  ['llama MoRA type 1 q,v,down', 'llama', { method: 'mora', moraType: 1, r: 2, alpha: 1, targets: ['q_proj', 'v_proj', 'down_proj'], seed: 0 }],
  ['llama MoRA type 6 all-linear', 'llama', { method: 'mora', moraType: 6, r: 2, alpha: 1, targets: 'all-linear', seed: 0 }],
  ['llama LoRA regex', 'llama', { method: 'lora', moraType: 1, r: 3, alpha: 6, targets: '.*\\.(o_proj|up_proj)', seed: 4 }],
  ['gpt2 LoRA c_attn,c_proj,c_fc', 'gpt2', { method: 'lora', moraType: 1, r: 2, alpha: 4, targets: ['c_attn', 'c_proj', 'c_fc'], seed: 1 }],
  ['gpt2 MoRA type 6 c_attn,c_fc', 'gpt2', { method: 'mora', moraType: 6, r: 4, alpha: 1, targets: ['c_attn', 'c_fc'], seed: 0 }],
];

for (const [label, arch, spec] of parityCases) {
  test(`adapter parity: ${label} logits equal the base model with ΔW merged (within 1e-4)`, async () => {
    const model = await CausalLM.load(dirs[arch], { adapter: spec });
    const ids = tf.tensor2d([[3, 1, 4, 1, 5, 9, 2, 6], [299, 0, 7, 7, 7, 120, 64, 8]], [2, 8], 'int32');
    const fresh = await model.logits(ids).data();
    const base = await CausalLM.load(dirs[arch], {});
    const baseLogits = await base.logits(ids).data();
    base.dispose();
    assert.ok(maxAbsDiff(fresh, baseLogits) < 1e-6, 'a fresh adapter leaves the model unchanged');

    const mods = randomModules(model, spec.method === 'mora' ? 0.1 : 0.3);
    model.loadAdapterWeights(mods);
    const adapted = await model.logits(ids).data();
    const out = path.join(root.dir, `merged-${label.replace(/\W+/g, '-')}`);
    await writeMerged(dirs[arch], out, model, mods);
    const merged = await CausalLM.load(out, {});
    const want = await merged.logits(ids).data();
    merged.dispose();
    const moved = maxAbsDiff(adapted, baseLogits);
    const diff = maxAbsDiff(adapted, want);
    assert.ok(moved > 0.05, `the adapter must change the logits noticeably (moved ${moved})`);
    assert.ok(diff < 1e-4, `${label}: max abs diff adapter vs merged = ${diff.toExponential(2)} (logits moved by ${moved.toFixed(3)})`);
    ids.dispose();
    model.dispose();
  });
}

test('exportAdapter → loadAdapterWeights round-trips; mismatched modules are named errors', async () => {
  const spec: AdapterSpec = { method: 'mora', moraType: 6, r: 2, alpha: 1, targets: ['q_proj', 'v_proj'], seed: 0 };
  const a = await CausalLM.load(dirs.llama, { adapter: spec });
  a.loadAdapterWeights(randomModules(a, 0.1));
  const exported = await a.exportAdapter();
  assert.deepEqual(exported.map((m) => m.path), ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
  for (const m of exported) {
    assert.deepEqual(m.aShape, m.bShape);
    assert.deepEqual(m.A, m.B, 'MoRA stores M twice');
  }
  const b = await CausalLM.load(dirs.llama, { adapter: spec });
  b.loadAdapterWeights(exported);
  const ids = tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32');
  assert.deepEqual(await a.logits(ids).data(), await b.logits(ids).data());
  const isMismatch = (e: unknown) => e instanceof TransformerError && e.kind === 'AdapterMismatch';
  assert.throws(() => b.loadAdapterWeights(exported.slice(1)), isMismatch);
  assert.throws(() => b.loadAdapterWeights([...exported, { ...exported[0], path: 'model.layers.0.mlp.up_proj' }]), isMismatch);
  assert.throws(() => b.loadAdapterWeights([{ ...exported[0], aShape: [2, 2], A: new Float32Array(4) }, ...exported.slice(1)]), isMismatch);
  ids.dispose();
  a.dispose();
  b.dispose();
});

test('a training step (loss + variableGrads) and generate leave no tensors behind', async () => {
  const model = await CausalLM.load(dirs.gpt2, { adapter: { method: 'mora', moraType: 1, r: 2, alpha: 1, targets: 'all-linear', seed: 0 } });
  const ids = tf.tensor2d([[1, 2, 3, 4, 5]], [1, 5], 'int32');
  const labels = tf.tensor2d([[2, 3, 4, 5, -100]], [1, 5], 'int32');
  const step = () => {
    const { value, grads } = tf.variableGrads(() => model.loss(ids, labels), model.trainableVariables());
    tf.dispose([value, ...Object.values(grads)]);
  };
  step(); // first call builds the per-length mask tables
  await model.generate([1, 2], 3);
  const before = tf.memory().numTensors;
  step();
  step();
  await model.generate([1, 2], 3);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([ids, labels]);
  model.dispose();
});
