// The fused round-and-check encoder must produce exactly float32ToBytes' bytes and refuse what would not be finite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addBaseInto, encodeChecked } from '../../src/adapters/mergeTensor';
import { MergeError } from '../../src/adapters/mergeError';
import { float32ToBytes } from '../../src/safetensors';

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
