// ΔW straight from stored bytes (extractDelta.ts): for every float dtype, aligned or not, and across block edges, the
// values, the sum of squares and the first non-finite index are exactly those of decoding both tensors with
// bytesToFloat32 (or as float64), subtracting, and summing the squares in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { storeValues, subtractValues } from '../../src/adapters/extractDelta';
import { bytesToFloat32, float32ToBytes, type Dtype } from '../../src/safetensors';
import { mulberry, randn } from '../../src/spectrum/random';

const F64 = (x: Float64Array) => new Uint8Array(x.buffer.slice(0));

/** Stored bytes of `values` in `dtype`, placed at byte offset `shift` of a larger buffer (unaligned when odd). */
function stored(values: Float64Array, dtype: Dtype, shift: number): Uint8Array {
  const raw = dtype === 'F64' ? F64(values) : float32ToBytes(Float32Array.from(values), dtype as 'F32' | 'F16' | 'BF16');
  const buf = new Uint8Array(raw.length + shift);
  buf.set(raw, shift);
  return buf.subarray(shift);
}

/** The exact decoded values, the reference way. */
function decoded(bytes: Uint8Array, dtype: Dtype): Float64Array {
  if (dtype !== 'F64') return Float64Array.from(bytesToFloat32(bytes, dtype));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float64Array.from({ length: bytes.length / 8 }, (_, i) => view.getFloat64(8 * i, true));
}

test('tuned − base from bytes: bit-identical to decode-then-subtract for F32, BF16, F16, F64, aligned or not', () => {
  const rnd = mulberry(3);
  const n = (1 << 16) * 2 + 37; // three blocks, the last one partial
  const base = Float64Array.from({ length: n }, () => randn(rnd) * 0.02);
  const tuned = Float64Array.from(base, (x) => (rnd() < 0.3 ? x : x + randn(rnd) * 1e-3));
  for (const [dt, db] of [['BF16', 'BF16'], ['F16', 'F16'], ['F32', 'F32'], ['F64', 'F64'], ['BF16', 'F32'], ['F64', 'F16']] as [Dtype, Dtype][]) {
    for (const shift of [0, 1]) {
      const tb = stored(tuned, dt, shift);
      const bb = stored(base, db, shift);
      const [t, b] = [decoded(tb, dt), decoded(bb, db)];
      const want = Float64Array.from(t, (x, i) => x - b[i]);
      let sq = 0;
      for (let i = 0; i < n; i++) sq += want[i] * want[i];
      const got = new Float64Array(n);
      storeValues(got, tb, dt);
      const stats = subtractValues(got, bb, db);
      const what = `${dt} − ${db}, shift ${shift}`;
      for (let i = 0; i < n; i++) if (!Object.is(got[i], want[i])) assert.fail(`${what}[${i}]: ${got[i]} vs ${want[i]}`);
      assert.ok(Object.is(stats.sumSq, sq), `${what}: Σ² ${stats.sumSq} vs ${sq}`);
      assert.equal(stats.firstNonFinite, -1);
    }
  }
});

test('the first non-finite difference is found by index, also in a later block; wrong lengths are refused', () => {
  const n = (1 << 16) + 10;
  const base = new Float64Array(n).fill(1);
  const tuned = new Float64Array(n).fill(2);
  tuned[(1 << 16) + 3] = Infinity;
  tuned[(1 << 16) + 7] = Number.NaN;
  const got = new Float64Array(n);
  storeValues(got, stored(tuned, 'F32', 0), 'F32');
  assert.equal(subtractValues(got, stored(base, 'BF16', 0), 'BF16').firstNonFinite, (1 << 16) + 3);
  assert.throws(() => storeValues(new Float64Array(3), new Uint8Array(8), 'F32'), RangeError);
});
