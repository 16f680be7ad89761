// The fused round-and-check encoder must produce exactly float32ToBytes' bytes and refuse what would not be finite;
// the row kernels must produce exactly the whole-tensor path's bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addBaseInto, encodeChecked, mergeTensorBytes, mergeTensorF32 } from '../../src/adapters/mergeTensor';
import { MergeError } from '../../src/adapters/mergeError';
import { planMerge, type BaseView } from '../../src/adapters/mergePlan';
import { float32ToBytes } from '../../src/safetensors';
import { Rng } from '../../src/util/rng';
import { projSource } from './mergeTestUtil';

const bitsToF32 = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0];

test('encodeChecked(BF16) equals float32ToBytes on ties, subnormals, signed zeros and the largest finite values', () => {
  const edge = [
    0, -0, 1, -1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -(1 + 2 ** -8), // ties to even, both directions
    bitsToF32(0x00000001), bitsToF32(0x00008000), bitsToF32(0x00018000), bitsToF32(0x807fffff), // subnormals
    bitsToF32(0x7f7f7fff), bitsToF32(0x7f7effff), -bitsToF32(0x7f7f7fff), 3.14159, -2.71828, 65504, 1e-30,
  ];
  let seed = 1;
  const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const random = Array.from({ length: 2000 }, () => (rnd() - 0.5) * 10 ** Math.floor(rnd() * 20 - 10));
  const x = Float32Array.from([...edge, ...random]);
  assert.deepEqual(encodeChecked(x.slice(), 'BF16', 't'), float32ToBytes(x, 'BF16'));
  const small = x.filter((v) => Math.abs(v) < 65504);
  assert.deepEqual(encodeChecked(small.slice(), 'F16', 't'), float32ToBytes(small, 'F16'));
  assert.deepEqual(encodeChecked(x.slice(), 'F32', 't'), float32ToBytes(x, 'F32'));
});

test('encodeChecked refuses NaN, ±Inf and values that round to Inf in the output dtype', () => {
  const bad: [number, 'BF16' | 'F16' | 'F32'][] = [
    [NaN, 'BF16'], [Infinity, 'BF16'], [-Infinity, 'F32'], [NaN, 'F16'],
    [bitsToF32(0x7f7f8000), 'BF16'], // exactly half an ulp above bf16 max: ties to even -> Inf
    [-bitsToF32(0x7f7fffff), 'BF16'],
    [65520, 'F16'], [-65520, 'F16'],
  ];
  for (const [v, d] of bad) {
    assert.throws(() => encodeChecked(Float32Array.of(1, v), d, 'w'), (e: unknown) => e instanceof MergeError && e.kind === 'NonFiniteResult' && /flat index 1/.test(e.message), `${v} ${d}`);
  }
  // The largest values that still round to a finite number pass.
  assert.doesNotThrow(() => encodeChecked(Float32Array.of(bitsToF32(0x7f7f7fff)), 'BF16', 'w'));
  assert.doesNotThrow(() => encodeChecked(Float32Array.of(65519), 'F16', 'w'));
});

test('addBaseInto decodes BF16, F16 and F32 base bytes (aligned or not) and adds them', () => {
  const w = Float32Array.of(1.5, -2, 0.25, 1024);
  for (const d of ['BF16', 'F16', 'F32'] as const) {
    const bytes = float32ToBytes(w, d);
    const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
    unaligned.set(bytes);
    for (const b of [bytes, unaligned]) {
      const acc = Float32Array.of(1, 1, 1, 1);
      addBaseInto(acc, b, d);
      assert.deepEqual(Array.from(acc), [2.5, -1, 1.25, 1025], d);
    }
  }
});

test('row kernels (mergeTensorBytes) give the bytes of mergeTensorF32 + encodeChecked: LoRA, MoRA 1/6, weights, TIES', () => {
  const rng = new Rng(41);
  const [outF, inF] = [13, 11]; // in not divisible by r̂, out > chunks·r̂ for small r̂: padding, wrapping and tiling
  const shape = [outF, inF];
  const name = 'model.layers.0.mlp.proj.weight';

  const combos: [('lora' | 'mora1' | 'mora6')[], number[]][] = [
    [['lora'], [1]], [['mora1'], [1]], [['mora6'], [1]], [['mora6'], [-0.5]], [['lora'], [2.5]],
    [['lora', 'mora6'], [0.7, -1.3]], [['mora1', 'mora6', 'lora'], [1, 0.5, 2]],
  ];
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    // Signed zeros in the base exercise the pass-through of ΔW's exact zeros (MoRA type 6 rows are sparse).
    const W = rng.normalArray(outF * inF);
    W[0] = -0; // inside row 0's band of non-zeros
    W[7] = -0; // outside it: passed through
    W[8] = 0;
    const baseBytes = float32ToBytes(W, dtype);
    const view: BaseView = {
      shards: ['s'], names: () => [name], shardOf: () => 's',
      info: () => ({ dtype, shape, dataOffsets: [0, baseBytes.length] }),
    };
    for (const [kinds, weights] of combos) {
      for (const method of ['linear', 'ties'] as const) {
        const sources = kinds.map((k, i) => projSource(rng, k, weights[i], outF, inF));
        const plan = planMerge(view, sources, { method, density: 0.4 });
        const t = plan.tensors[0];
        const what = `${dtype} ${kinds.join('+')} ${weights.join(',')} ${method}`;
        const want = encodeChecked(mergeTensorF32(plan, t, sources, baseBytes.slice()), dtype, what);
        const got = mergeTensorBytes(plan, t, sources, baseBytes.slice(), dtype, what);
        assert.ok(got, `${what}: the row kernels must cover this case`);
        assert.deepEqual(Buffer.from(got), Buffer.from(want), what);
      }
    }
  }
});
