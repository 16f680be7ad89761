// The backend ladder on this machine: auto picks the best rung that initialises and explains every rung above it;
// forced rungs that are unavailable are BackendErrors; wasm and cpu compute the same logits and gradients.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/model/transformer';
import { BackendError, ladder, releaseBackend, selectBackend } from '../../src/trainer/backend';
import { maxAbs, maxAbsDiff, tmpDir, writeTestModel } from './transformerTestUtil';

let root: Awaited<ReturnType<typeof tmpDir>>;
before(async () => {
  root = await tmpDir('mora-backend-');
  await mkdir(path.join(root.dir, 'm'));
  await writeTestModel(path.join(root.dir, 'm'), { arch: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 2, vocab: 300, seed: 5 });
});
after(async () => {
  releaseBackend();
  await root.cleanup();
});

const installed = (pkg: string) => {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

test('auto walks the ladder: one note per skipped rung, each naming its rung and reason', async () => {
  const sel = await selectBackend('auto');
  assert.equal(tf.getBackend(), sel.backend === 'tfjs-node' || sel.backend === 'tfjs-node-gpu' ? 'tensorflow' : sel.backend);
  const skipped = ladder.slice(0, ladder.indexOf(sel.backend));
  assert.equal(sel.notes.length, skipped.length, sel.notes.join('\n'));
  sel.notes.forEach((note, i) => assert.ok(note.startsWith(skipped[i]), `note ${i} should name ${skipped[i]}: ${note}`));
  if (!installed('@tensorflow/tfjs-node-gpu')) {
    assert.match(sel.notes[0], /^tfjs-node-gpu not installed: its install needs network access to download libtensorflow and CUDA 11\.2\/cuDNN 8\.1$/);
  }
  if (sel.backend === 'wasm') assert.match(sel.detail, /^wasm \((SIMD|no SIMD), 1 thread\)$/);
});

test('a forced rung that is unavailable is a BackendError; unknown names too', async () => {
  if (!installed('@tensorflow/tfjs-node')) {
    await assert.rejects(selectBackend('tfjs-node'), (e: unknown) => e instanceof BackendError && e.kind === 'Unavailable' && /tfjs-node not installed/.test(e.message));
  }
  await assert.rejects(selectBackend('tpu' as 'cpu'), (e: unknown) => e instanceof BackendError && /unknown backend 'tpu'/.test(e.message));
});

test('wasm and cpu give the same logits and adapter gradients (within 1e-4)', async () => {
  const run = async (backend: 'wasm' | 'cpu') => {
    const sel = await selectBackend(backend);
    assert.equal(sel.backend, backend);
    assert.equal(tf.getBackend(), backend);
    const model = await CausalLM.load(path.join(root.dir, 'm'), { adapter: { method: 'lora', r: 2, alpha: 4, moraType: 1, targets: 'all-linear', seed: 3 } });
    const ids = tf.tensor2d([[1, 5, 9, 200, 3], [7, 7, 7, 0, 299]], [2, 5], 'int32');
    const labels = tf.tensor2d([[5, 9, 200, 3, -100], [7, 7, 0, 299, 1]], [2, 5], 'int32');
    const logits = await model.logits(ids).data();
    const { value, grads } = tf.variableGrads(() => model.loss(ids, labels), model.trainableVariables());
    const g = await Promise.all(model.trainableVariables().map((v) => grads[v.name].data()));
    tf.dispose([ids, labels, value, ...Object.values(grads)]);
    model.dispose();
    return { logits, g };
  };
  const w = await run('wasm');
  const c = await run('cpu');
  const dl = maxAbsDiff(w.logits, c.logits);
  assert.ok(maxAbs(c.logits) > 1 && dl < 1e-4, `logits wasm vs cpu: max abs diff ${dl.toExponential(2)}`);
  const dg = Math.max(...w.g.map((g, i) => maxAbsDiff(g, c.g[i])));
  const scale = Math.max(...c.g.map((g) => maxAbs(g)));
  assert.ok(scale > 1e-3 && dg < 1e-4, `gradients wasm vs cpu: max abs diff ${dg.toExponential(2)} (max |grad| ${scale.toExponential(2)})`);
});
