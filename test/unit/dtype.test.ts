import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16BitsToF32, bytesToFloat32, dtypeSize, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, f8e4m3ToF32, f8e5m2ToF32,
  float32ToBytes, SafetensorsError,
} from '../../src/safetensors';
import { Rng } from '../../src/util/rng';

const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isBf16NaN = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
const bitsToF32 = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];

test('dtype sizes', () => {
  assert.deepEqual(
    (['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2'] as const).map(dtypeSize),
    [8, 4, 2, 2, 8, 4, 2, 1, 1, 1, 2, 4, 8, 1, 1],
  );
});

test('F32 -> F16: exact values, overflow, zeros, infinities', () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(-2), 0xc000);
  assert.equal(f32ToF16Bits(0.1), 0x2e66);
  assert.equal(f32ToF16Bits(1 / 3), 0x3555);
  assert.equal(f32ToF16Bits(65504), 0x7bff); // max half
  assert.equal(f32ToF16Bits(65519), 0x7bff); // below the midpoint to 65536
  assert.equal(f32ToF16Bits(65520), 0x7c00); // midpoint, 0x7bff is odd -> rounds to inf
  assert.equal(f32ToF16Bits(-65520), 0xfc00);
  assert.equal(f32ToF16Bits(1e10), 0x7c00);
  assert.equal(f32ToF16Bits(0), 0x0000);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(Infinity), 0x7c00);
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  const nan = f32ToF16Bits(NaN);
  assert.ok(isF16NaN(nan) && (nan & 0x200) !== 0, `quiet NaN, got ${nan.toString(16)}`);
});

test('F32 -> F16: subnormals and underflow', () => {
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToF16Bits(-(2 ** -24)), 0x8001);
  assert.equal(f32ToF16Bits(1023 * 2 ** -24), 0x03ff); // largest subnormal
  assert.equal(f32ToF16Bits(2 ** -14), 0x0400); // smallest normal
  assert.equal(f32ToF16Bits(1023.5 * 2 ** -24), 0x0400); // tie, 0x3ff odd -> up into the normals
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie between 0 and 2^-24 -> even (0)
  assert.equal(f32ToF16Bits(-(2 ** -25)), 0x8000);
  assert.equal(f32ToF16Bits(2 ** -25 * 1.0001), 0x0001); // just above the tie
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 ulps -> even (2)
  assert.equal(f32ToF16Bits(5 * 2 ** -25), 0x0002); // tie between 2 and 3 ulps -> even (2)
  assert.equal(f32ToF16Bits(2 ** -26), 0x0000);
  assert.equal(f32ToF16Bits(1e-45), 0x0000); // float32 subnormal
  assert.equal(f32ToF16Bits(-1e-45), 0x8000);
});

test('F32 -> F16: ties to even in the normal range', () => {
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie, 0x3c00 even
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie between 0x3c01 and 0x3c02 -> even
  assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01); // above the tie
  assert.equal(f32ToF16Bits(1 + 2 ** -12), 0x3c00);
  assert.equal(f32ToF16Bits(2048 + 1), 0x6800); // 2049: ulp is 2 there, tie -> 2048
  assert.equal(f32ToF16Bits(2048 + 3), 0x6802); // 2051 -> 2052
});

test('F16 -> F32 decode', () => {
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x0400), 2 ** -14);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  assert.equal(f16BitsToF32(0xc000), -2);
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Number.isNaN(f16BitsToF32(0x7c01)));
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
});

test('F16: every bit pattern survives decode -> encode (NaN stays NaN)', () => {
  for (let h = 0; h < 65536; h++) {
    const back = f32ToF16Bits(f16BitsToF32(h));
    if (isF16NaN(h)) assert.ok(isF16NaN(back), `0x${h.toString(16)}`);
    else if (back !== h) assert.fail(`0x${h.toString(16)} -> 0x${back.toString(16)}`);
  }
});

test('F32 -> F16 is the nearest half, ties to even, for random values', () => {
  const rng = new Rng(7);
  for (let i = 0; i < 20000; i++) {
    // Log-uniform magnitudes from deep subnormal to just past max half.
    const x = Math.fround((rng.next() < 0.5 ? -1 : 1) * 2 ** (rng.next() * 42 - 26));
    const h = f32ToF16Bits(x);
    const v = f16BitsToF32(h);
    const mag = h & 0x7fff;
    if (mag === 0x7c00) {
      assert.ok(Math.abs(x) >= 65520, `${x} overflowed`);
      continue;
    }
    const down = mag === 0 ? 0 : f16BitsToF32(mag - 1);
    const up = f16BitsToF32(mag + 1);
    const a = Math.abs(x);
    const dv = Math.abs(a - Math.abs(v));
    assert.ok(dv <= Math.abs(a - down) && dv <= Math.abs(a - up), `${x} -> ${v} is not nearest`);
    if (dv === Math.abs(a - up) || (mag > 0 && dv === Math.abs(a - down))) assert.equal(mag & 1, 0, `${x}: tie not even`);
  }
});

test('F32 -> BF16: exact values, ties to even, overflow, NaN', () => {
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(f32ToBf16Bits(-2), 0xc000);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie, 0x3f80 even -> 1
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie between 1+2^-7 and 1+2^-6 -> 1+2^-6
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16Bits(1 + 2 ** -9), 0x3f80);
  assert.equal(f32ToBf16Bits(bitsToF32(0x7f7f7fff)), 0x7f7f); // just below the midpoint -> max bf16
  assert.equal(f32ToBf16Bits(bitsToF32(0x7f7f8000)), 0x7f80); // midpoint, 0x7f7f odd -> inf
  assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80); // max float32 -> inf
  assert.equal(f32ToBf16Bits(-3.4028234663852886e38), 0xff80);
  assert.equal(f32ToBf16Bits(0), 0x0000);
  assert.equal(f32ToBf16Bits(-0), 0x8000);
  assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
  assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  assert.equal(f32ToBf16Bits(NaN), 0x7fc0);
  // Subnormals: bf16 keeps float32's exponent range, so 2^-133 is its smallest subnormal.
  assert.equal(f32ToBf16Bits(bitsToF32(0x00010000)), 0x0001);
  assert.equal(f32ToBf16Bits(bitsToF32(0x00008000)), 0x0000); // tie -> even 0
  assert.equal(f32ToBf16Bits(bitsToF32(0x00018000)), 0x0002); // tie -> even 2
  assert.equal(f32ToBf16Bits(bitsToF32(0x80008001)), 0x8001);
});

test('BF16: a NaN whose payload sits only in the dropped bits stays NaN', () => {
  // 0x7f800001 truncated would read as +inf; whatever payload the engine keeps, the result must be a NaN.
  const bytes = float32ToBytes(new Float32Array(new Uint32Array([0x7f800001, 0xff800001]).buffer), 'BF16');
  assert.ok(isBf16NaN(bytes[0] | (bytes[1] << 8)));
  assert.ok(isBf16NaN(bytes[2] | (bytes[3] << 8)));
});

test('BF16: every bit pattern survives decode -> encode', () => {
  for (let b = 0; b < 65536; b++) {
    const back = f32ToBf16Bits(bf16BitsToF32(b));
    if (isBf16NaN(b)) assert.ok(isBf16NaN(back));
    else if (back !== b) assert.fail(`0x${b.toString(16)} -> 0x${back.toString(16)}`);
  }
});

test('float32ToBytes: little-endian layouts', () => {
  const x = new Float32Array([1, -2, 0.5]);
  assert.deepEqual([...float32ToBytes(x, 'F32')], [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f]);
  assert.deepEqual([...float32ToBytes(x, 'F16')], [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]);
  assert.deepEqual([...float32ToBytes(x, 'BF16')], [0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3f]);
  assert.deepEqual([...float32ToBytes(new Float32Array([1]), 'F64')], [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
  assert.throws(() => float32ToBytes(x, 'I32' as 'F32'), (e: unknown) => e instanceof SafetensorsError && e.kind === 'UnsupportedDtype');
});

test('bytesToFloat32: every float and integer dtype', () => {
  const b = (...v: number[]) => new Uint8Array(v);
  assert.deepEqual([...bytesToFloat32(b(0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0), 'F32')], [1, -2]);
  assert.deepEqual([...bytesToFloat32(b(0, 0, 0, 0, 0, 0, 0xf0, 0x3f), 'F64')], [1]);
  assert.deepEqual([...bytesToFloat32(b(0x00, 0x3c, 0x01, 0x00), 'F16')], [1, 2 ** -24]);
  assert.deepEqual([...bytesToFloat32(b(0x80, 0x3f, 0x00, 0xc0), 'BF16')], [1, -2]);
  assert.deepEqual([...bytesToFloat32(b(0xff, 0x80, 0x7f), 'I8')], [-1, -128, 127]);
  assert.deepEqual([...bytesToFloat32(b(0xff, 0x80), 'U8')], [255, 128]);
  assert.deepEqual([...bytesToFloat32(b(0, 1, 2), 'BOOL')], [0, 1, 1]);
  assert.deepEqual([...bytesToFloat32(b(0xff, 0xff, 0x00, 0x80), 'I16')], [-1, -32768]);
  assert.deepEqual([...bytesToFloat32(b(0xff, 0xff, 0x00, 0x80), 'U16')], [65535, 32768]);
  assert.deepEqual([...bytesToFloat32(b(0xfe, 0xff, 0xff, 0xff), 'I32')], [-2]);
  assert.deepEqual([...bytesToFloat32(b(0xfe, 0xff, 0xff, 0xff), 'U32')], [4294967296]); // 4294967294 rounds in f32
  assert.deepEqual([...bytesToFloat32(b(0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 'I64')], [-3]);
  assert.deepEqual([...bytesToFloat32(b(5, 0, 0, 0, 0, 0, 0, 0), 'U64')], [5]);
  // A view at an odd byte offset (as from a larger buffer) still decodes.
  const odd = b(9, 0, 0, 0x80, 0x3f).subarray(1);
  assert.deepEqual([...bytesToFloat32(odd, 'F32')], [1]);
  assert.throws(() => bytesToFloat32(b(1, 2, 3), 'F32'), (e: unknown) => e instanceof SafetensorsError && e.kind === 'InvalidTensorData');
});

test('FP8 E4M3FN and E5M2 decode', () => {
  assert.equal(f8e4m3ToF32(0x38), 1);
  assert.equal(f8e4m3ToF32(0xb8), -1);
  assert.equal(f8e4m3ToF32(0x7e), 448); // max, no infinities in FN
  assert.ok(Number.isNaN(f8e4m3ToF32(0x7f)));
  assert.ok(Number.isNaN(f8e4m3ToF32(0xff)));
  assert.equal(f8e4m3ToF32(0x78), 256); // exponent 15 is a normal number in FN
  assert.equal(f8e4m3ToF32(0x01), 2 ** -9);
  assert.equal(f8e4m3ToF32(0x08), 2 ** -6);
  assert.equal(f8e5m2ToF32(0x3c), 1);
  assert.equal(f8e5m2ToF32(0x7b), 57344);
  assert.equal(f8e5m2ToF32(0x7c), Infinity);
  assert.equal(f8e5m2ToF32(0x01), 2 ** -16);
  assert.ok(Number.isNaN(f8e5m2ToF32(0x7e)));
  assert.deepEqual([...bytesToFloat32(new Uint8Array([0x38, 0x7e]), 'F8_E4M3')], [1, 448]);
  assert.deepEqual([...bytesToFloat32(new Uint8Array([0x3c, 0xc0]), 'F8_E5M2')], [1, -2]);
});
