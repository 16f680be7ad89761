// Forced WebGPU through the `webgpu` package (Dawn): where an adapter exists (a GPU, Mesa lavapipe, or Dawn's OpenGL
// ES path on stock Mesa with EGL_PLATFORM=surfaceless) it must compute the same logits as cpu; where none exists the
// choice is a BackendError that says why. Its own file: the WebGPU globals stay in this process only.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CausalLM } from '../../src/model/transformer';
import { BackendError, releaseBackend, selectBackend } from '../../src/trainer/backend';
import { maxAbs, maxAbsDiff, tmpDir, writeTestModel } from './transformerTestUtil';

after(() => releaseBackend());

test('forced webgpu: same logits as cpu (within 1e-3), or a BackendError naming the reason', async (t) => {
  const root = await tmpDir('mora-webgpu-');
  try {
    const dir = path.join(root.dir, 'm');
    await mkdir(dir);
    await writeTestModel(dir, { arch: 'llama', hidden: 32, layers: 1, heads: 4, kvHeads: 2, vocab: 300, seed: 8 });
    const logits = async () => {
      const model = await CausalLM.load(dir, {});
      const ids = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
      const out = await model.logits(ids).data(); // async read: dataSync needs OffscreenCanvas on webgpu in Node
      ids.dispose();
      model.dispose();
      return out;
    };
    let sel;
    try {
      sel = await selectBackend('webgpu');
    } catch (err) {
      assert.ok(err instanceof BackendError && /^backend 'webgpu' is not available: webgpu: /.test(err.message), String(err));
      t.diagnostic(`webgpu unavailable here: ${(err as Error).message}`);
      return;
    }
    t.diagnostic(`webgpu adapter: ${sel.detail}`);
    const gpu = await logits();
    releaseBackend();
    await selectBackend('cpu');
    const cpu = await logits();
    const diff = maxAbsDiff(gpu, cpu);
    assert.ok(maxAbs(cpu) > 1 && diff < 1e-3, `webgpu vs cpu: max abs diff ${diff.toExponential(2)}`);
  } finally {
    await root.cleanup();
  }
});
