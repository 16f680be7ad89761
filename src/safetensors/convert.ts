import { SafetensorsError } from './errors';
import type { Dtype } from './dtype';

// Shared scratch views to move between a float32 value and its bit pattern without allocating.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Whether this host stores multi-byte numbers little-endian, as safetensors does (typed-array views of file bytes are then the values). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * float32 bit pattern -> IEEE half bits, round to nearest, ties to even; overflow goes to ±inf, NaN stays a quiet NaN.
 * Integer-only so array loops can run it on a Uint32Array view without a scratch round trip per element.
 */
export function f16BitsFromF32Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const a = b & 0x7fffffff;
  if (a >= 0x38800000) {
    // Normal half: rebias the exponent (127 -> 15) and keep 10 of 23 mantissa bits; adding 0xfff plus the kept
    // lowest bit before the shift rounds to nearest even, and a carry out of the mantissa bumps the exponent (up to inf).
    if (a < 0x47800000) return sign | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
    if (a <= 0x7f800000) return sign | 0x7c00; // too large for a half, or infinite
    return sign | 0x7e00 | ((a & 0x7fffff) >>> 13); // NaN, kept quiet
  }
  // Subnormal half (or zero): value in units of 2^-24 is m >> s; float32 exponents below 102 underflow to zero.
  if (a < 0x33000000) return sign;
  const s = 126 - (a >>> 23);
  const m = (a & 0x7fffff) | 0x800000;
  let h = m >>> s;
  const rem = m & ((1 << s) - 1);
  const half = 1 << (s - 1);
  if (rem > half || (rem === half && (h & 1))) h += 1;
  return sign | h;
}

/** float32 -> IEEE half bits, round to nearest, ties to even; overflow goes to ±inf, NaN stays a quiet NaN. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  return f16BitsFromF32Bits(u32[0]);
}

let f16Table: Float32Array | null = null;

/** Decoding table for all 65536 half bit patterns (built once, 256 KB). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) bits[h] = sign | 0x7f800000 | (mant << 13);
    else if (exp !== 0) bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
    else t[h] = (sign ? -1 : 1) * mant * 2 ** -24;
  }
  return (f16Table = t);
}

/** The decoding table as float32 bit patterns, for loops that copy bits without a float round trip. */
export function f16TableBits(): Uint32Array {
  return new Uint32Array(halfTable().buffer);
}

export function f16BitsToF32(h: number): number {
  return halfTable()[h & 0xffff];
}

/** float32 bit pattern -> bfloat16 bits, round to nearest, ties to even; NaN is kept quiet. Integer-only. */
export function bf16BitsFromF32Bits(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x0040) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 -> bfloat16 bits, round to nearest, ties to even; NaN is kept quiet. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  return bf16BitsFromF32Bits(u32[0]);
}

export function bf16BitsToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** FP8 E4M3FN: bias 7, no infinities, S.1111.111 is NaN, max 448. */
export function f8e4m3ToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >>> 3) & 0xf;
  const mant = b & 7;
  if (exp === 0xf && mant === 7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

/** FP8 E5M2 is the top byte of an IEEE half. */
export function f8e5m2ToF32(b: number): number {
  return halfTable()[(b & 0xff) << 8];
}

/** Float32 values -> little-endian bytes of `dtype`, narrowing with round-to-nearest-even. */
export function float32ToBytes(x: Float32Array, dtype: 'F32' | 'F16' | 'BF16' | 'F64'): Uint8Array {
  const n = x.length;
  switch (dtype) {
    case 'F32': {
      if (LITTLE_ENDIAN) return new Uint8Array(x.slice().buffer);
      const out = new Uint8Array(n * 4);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, x[i], true);
      return out;
    }
    case 'F64': {
      const out = new Uint8Array(n * 8);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, x[i], true);
      return out;
    }
    case 'F16':
    case 'BF16': {
      // One pass over the float32 bit patterns (a Float32Array is always 4-aligned), no scratch round trip.
      const bits = new Uint32Array(x.buffer, x.byteOffset, n);
      const out = new Uint8Array(n * 2);
      if (LITTLE_ENDIAN) {
        const out16 = new Uint16Array(out.buffer);
        if (dtype === 'F16') for (let i = 0; i < n; i++) out16[i] = f16BitsFromF32Bits(bits[i]);
        else for (let i = 0; i < n; i++) out16[i] = bf16BitsFromF32Bits(bits[i]);
        return out;
      }
      const conv = dtype === 'F16' ? f16BitsFromF32Bits : bf16BitsFromF32Bits;
      for (let i = 0; i < n; i++) {
        const h = conv(bits[i]);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      return out;
    }
    default:
      throw new SafetensorsError('UnsupportedDtype', `cannot encode float32 as ${String(dtype)}`);
  }
}

/** Little-endian bytes of any float or integer dtype -> Float32Array (integers beyond 2^24 round as Math.fround). */
export function bytesToFloat32(bytes: Uint8Array, dtype: Dtype): Float32Array {
  const size = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2 }[dtype as string] ?? 1;
  if (bytes.length % size !== 0) {
    throw new SafetensorsError('InvalidTensorData', `${bytes.length} bytes is not a whole number of ${dtype} elements`);
  }
  const n = bytes.length / size;
  const out = new Float32Array(n);
  if (dtype === 'F32' && LITTLE_ENDIAN) {
    const aligned = bytes.byteOffset % 4 === 0;
    out.set(aligned ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.slice().buffer));
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  switch (dtype) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true); break;
    case 'F64': for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true); break;
    case 'F16': {
      if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
        // Copy the table's bit patterns as integers: a float round trip may quiet signalling NaN payloads.
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        const tBits = f16TableBits();
        const bits = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) bits[i] = tBits[h[i]];
      } else {
        const t = halfTable();
        for (let i = 0; i < n; i++) out[i] = t[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      }
      break;
    }
    case 'BF16': {
      // bf16 is the high half of a float32: shift the 16 bits up into the float32 bit pattern.
      const bits = new Uint32Array(out.buffer);
      if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        for (let i = 0; i < n; i++) bits[i] = h[i] << 16;
      } else if (LITTLE_ENDIAN) {
        for (let i = 0; i < n; i++) bits[i] = (bytes[2 * i] << 16) | (bytes[2 * i + 1] << 24);
      } else {
        for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(bytes[2 * i] | (bytes[2 * i + 1] << 8));
      }
      break;
    }
    case 'I64': for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true)); break;
    case 'U64': for (let i = 0; i < n; i++) out[i] = Number(dv.getBigUint64(8 * i, true)); break;
    case 'I32': for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true); break;
    case 'U32': for (let i = 0; i < n; i++) out[i] = dv.getUint32(4 * i, true); break;
    case 'I16': for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true); break;
    case 'U16': for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true); break;
    case 'I8': for (let i = 0; i < n; i++) out[i] = dv.getInt8(i); break;
    case 'U8': for (let i = 0; i < n; i++) out[i] = bytes[i]; break;
    case 'BOOL': for (let i = 0; i < n; i++) out[i] = bytes[i] ? 1 : 0; break;
    case 'F8_E4M3': for (let i = 0; i < n; i++) out[i] = f8e4m3ToF32(bytes[i]); break;
    case 'F8_E5M2': for (let i = 0; i < n; i++) out[i] = f8e5m2ToF32(bytes[i]); break;
    default:
      throw new SafetensorsError('UnsupportedDtype', `cannot decode dtype ${String(dtype)}`);
  }
  return out;
}
