import { SafetensorsError } from './errors';
import type { Dtype } from './dtype';

// Shared scratch views to move between a float32 value and its bit pattern without allocating.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** float32 -> IEEE half bits, round to nearest, ties to even; overflow goes to ±inf, NaN stays a quiet NaN. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15; // rebiased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e >= 1) {
    // Normal half: keep 10 of 23 mantissa bits; a carry out of the mantissa correctly bumps the exponent (up to inf).
    const rem = mant & 0x1fff;
    let h = (e << 10) | (mant >>> 13);
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h += 1;
    return sign | h;
  }
  // Subnormal half (or zero): value in units of 2^-24 is m >> s.
  if (exp === 0) return sign; // float32 subnormals are far below half's smallest subnormal
  const s = 14 - e;
  if (s > 24) return sign;
  const m = mant | 0x800000;
  let h = m >>> s;
  const rem = m & ((1 << s) - 1);
  const half = 1 << (s - 1);
  if (rem > half || (rem === half && (h & 1))) h += 1;
  return sign | h;
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

export function f16BitsToF32(h: number): number {
  return halfTable()[h & 0xffff];
}

/** float32 -> bfloat16 bits, round to nearest, ties to even; NaN is kept quiet. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
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
      const conv = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      const out = new Uint8Array(n * 2);
      for (let i = 0; i < n; i++) {
        const h = conv(x[i]);
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
    out.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  switch (dtype) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true); break;
    case 'F64': for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true); break;
    case 'F16': {
      const t = halfTable();
      for (let i = 0; i < n; i++) out[i] = t[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      break;
    }
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = (bytes[2 * i] << 16) | (bytes[2 * i + 1] << 24);
      if (!LITTLE_ENDIAN) for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(bytes[2 * i] | (bytes[2 * i + 1] << 8));
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
