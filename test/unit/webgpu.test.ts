// WebGPU through Dawn (src/trainer/webgpuSetup.ts): where an adapter exists (a GPU, Mesa ≥ 25 lavapipe, or Dawn's
// OpenGL ES path on stock Mesa) the tfjs 'webgpu' backend must compute what 'cpu' computes; where none exists the
// tests skip with initWebGpu()'s one-line reason. Its own file: the WebGPU globals stay in this process only, and
// the after() hook destroys the Dawn device so the process can exit.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initWebGpu, releaseWebGpu } from '../../src/trainer/webgpuSetup';

after(() => releaseWebGpu());

/** Deterministic values in [-scale, scale) from a 32-bit LCG, so both backends see identical inputs. */
function values(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}

const maxAbs = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxAbsDiff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);

/** The ops under test on the current backend, read back asynchronously (dataSync needs OffscreenCanvas on webgpu). */
async function compute(): Promise<Record<string, Float32Array>> {
  // Odd sizes so that no dimension is a multiple of the kernels' tile sizes.
  const a = tf.tensor2d(values(33 * 47, 1), [33, 47]); // [m, k]
  const b = tf.tensor2d(values(47 * 29, 2), [47, 29]); // [k, n]
  const bt = tf.tensor2d(values(29 * 47, 3), [29, 47]); // [n, k]
  const bias = tf.tensor1d(values(29, 4));
  const alpha = tf.tensor1d(values(29, 5, 0.25));
  const logits = tf.tensor2d(values(7 * 130, 6, 10), [7, 130]); // rows of 130 logits in [-10, 10)
  const outs = {
    matMul: tf.matMul(a, b), // [m, k] x [k, n] -> [m, n]
    matMulTransposedB: tf.matMul(a, bt, false, true), // [m, k] x [n, k]ᵀ -> [m, n]
    // Five storage buffers in one kernel (a, b, bias, alpha, out): more than compatibility mode's default allows.
    fusedMatMulBiasPrelu: tf.fused.matMul({ a, b, bias, activation: 'prelu', preluActivationWeights: alpha }),
    softmax: tf.softmax(logits), // [7, 130], each row sums to 1
  };
  const result: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(outs)) result[name] = (await t.data()) as Float32Array;
  tf.dispose([a, b, bt, bias, alpha, logits, ...Object.values(outs)]);
  return result;
}

test('webgpu equals cpu within 1e-4: matMul, transposed matMul, fused matMul + bias + prelu, softmax', async (t) => {
  const init = await initWebGpu();
  if (!init.ok) {
    t.skip(init.note);
    return;
  }
  t.diagnostic(`webgpu adapter: ${init.adapterInfo}`);
  assert.ok(await tf.setBackend('cpu'));
  const cpu = await compute();
  assert.ok(await tf.setBackend('webgpu'));
  assert.equal(tf.getBackend(), 'webgpu');
  const gpu = await compute();
  for (const name of Object.keys(cpu)) {
    const diff = maxAbsDiff(gpu[name], cpu[name]);
    t.diagnostic(`${name}: max |webgpu - cpu| = ${diff.toExponential(2)} (max |cpu| ${maxAbs(cpu[name]).toFixed(3)})`);
    assert.equal(gpu[name].length, cpu[name].length, name);
    assert.ok(maxAbs(cpu[name]) > 0.01, `${name}: the reference is not trivially zero`);
    assert.ok(diff < 1e-4, `${name}: max abs diff ${diff.toExponential(2)} ≥ 1e-4`);
  }
  // The softmax rows sum to one on the GPU too (a cheap check that the reference itself is sane).
  for (let r = 0; r < 7; r++) {
    const sum = gpu.softmax.subarray(r * 130, (r + 1) * 130).reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `softmax row ${r} sums to ${sum}`);
  }
});

test('releaseWebGpu unregisters the backend and a second initWebGpu works again', async (t) => {
  const first = await initWebGpu();
  if (!first.ok) {
    t.skip(first.note);
    return;
  }
  assert.equal(await initWebGpu(), first, 'the answer is cached while set up');
  releaseWebGpu();
  assert.equal(tf.findBackendFactory('webgpu'), null);
  assert.equal((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu, undefined);
  const again = await initWebGpu();
  assert.ok(again.ok, again.ok ? '' : again.note);
  assert.equal(again.adapterInfo, first.adapterInfo);
  assert.ok(await tf.setBackend('webgpu'));
  const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  const b = tf.tensor2d([5, 6, 7, 8], [2, 2]);
  const y = tf.matMul(a, b); // [2, 2] x [2, 2] -> [2, 2]
  assert.deepEqual(Array.from(await y.data()), [19, 22, 43, 50]);
  tf.dispose([a, b, y]);
});
