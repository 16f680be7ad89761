// ΔW = W_tuned − W_base in float64, decoded straight from the stored bytes into a caller's buffer. Each narrower float
// type decodes exactly (the bit patterns readFloat32 produces) a block at a time into one reused block buffer, so
// neither model's tensor ever exists as a full float32 copy next to ΔW (per element the extraction holds the 8 bytes
// of ΔW plus the stored bytes being read, instead of 8 + 4 + 4 + 2), and no temporary is allocated per block.
// The subtraction pass also finds the first non-finite value and sums the squares in index order — the sum
// frobeniusNorm would form, bit for bit — so ΔW is read once more for the fit and not for these.
import { bytesToFloat32, dtypeSize, LITTLE_ENDIAN, type Dtype } from '../safetensors';
import { f16TableBits } from '../safetensors/convert';

/** Elements decoded per block (a 256 KB float32 block buffer, allocated once). */
const BLOCK = 1 << 16;
const blockF32 = new Float32Array(BLOCK);
const blockBits = new Uint32Array(blockF32.buffer);

/** Values [i0, i0 + len) of the tensor, exactly: a view of the bytes (F32, F64) or the reused block buffer. */
function decodeBlock(bytes: Uint8Array, dtype: Dtype, i0: number, len: number): Float32Array | Float64Array {
  const size = dtypeSize(dtype);
  const at = bytes.byteOffset + i0 * size;
  if (LITTLE_ENDIAN && at % size === 0) {
    if (dtype === 'F32') return new Float32Array(bytes.buffer, at, len);
    if (dtype === 'F64') return new Float64Array(bytes.buffer, at, len);
    if (dtype === 'BF16' || dtype === 'F16') {
      // bf16 is the high half of a float32; f16 goes through the same bit table as bytesToFloat32 (no float round
      // trip, so NaN payloads are kept as they are there).
      const h = new Uint16Array(bytes.buffer, at, len);
      if (dtype === 'BF16') for (let j = 0; j < len; j++) blockBits[j] = h[j] << 16;
      else {
        const table = f16TableBits();
        for (let j = 0; j < len; j++) blockBits[j] = table[h[j]];
      }
      return blockF32;
    }
  }
  const part = bytes.subarray(i0 * size, (i0 + len) * size);
  if (dtype !== 'F64') return bytesToFloat32(part, dtype);
  const view = new DataView(part.buffer, part.byteOffset, part.byteLength);
  return Float64Array.from({ length: len }, (_, j) => view.getFloat64(j * 8, true));
}

function checkLength(out: Float64Array, bytes: Uint8Array, dtype: Dtype): void {
  if (bytes.length !== out.length * dtypeSize(dtype)) throw new RangeError(`${bytes.length} bytes of ${dtype} for ${out.length} values`);
}

/** out[i] = the tensor's stored value i (float64). */
export function storeValues(out: Float64Array, bytes: Uint8Array, dtype: Dtype): void {
  checkLength(out, bytes, dtype);
  for (let i0 = 0; i0 < out.length; i0 += BLOCK) {
    const len = Math.min(BLOCK, out.length - i0);
    const v = decodeBlock(bytes, dtype, i0, len);
    for (let j = 0; j < len; j++) out[i0 + j] = v[j];
  }
}

export interface SubtractStats {
  /** Σ out[i]² in index order after the subtraction (frobeniusNorm's sum); meaningless when firstNonFinite ≥ 0. */
  sumSq: number;
  /** Index of the first NaN or ±inf in the result, −1 when all are finite. */
  firstNonFinite: number;
}

/** out[i] −= the tensor's stored value i, in float64: after storeValues(tuned) it holds tuned − base. */
export function subtractValues(out: Float64Array, bytes: Uint8Array, dtype: Dtype): SubtractStats {
  checkLength(out, bytes, dtype);
  let sumSq = 0;
  let firstNonFinite = -1;
  for (let i0 = 0; i0 < out.length; i0 += BLOCK) {
    const len = Math.min(BLOCK, out.length - i0);
    const v = decodeBlock(bytes, dtype, i0, len);
    for (let j = 0; j < len; j++) {
      const d = out[i0 + j] - v[j];
      out[i0 + j] = d;
      sumSq += d * d;
    }
    // A NaN or ±inf in the block makes the running sum non-finite (so can an overflow of finite squares: the block
    // is then searched in vain, which is only slower).
    if (firstNonFinite < 0 && !Number.isFinite(sumSq)) {
      for (let j = 0; j < len; j++) {
        if (!Number.isFinite(out[i0 + j])) {
          firstNonFinite = i0 + j;
          break;
        }
      }
    }
  }
  return { sumSq, firstNonFinite };
}
