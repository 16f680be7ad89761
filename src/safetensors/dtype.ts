import { SafetensorsError } from './errors';

export type Dtype =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL' | 'U16' | 'U32' | 'U64'
  | 'F8_E4M3' | 'F8_E5M2';

/**
 * The reference implementation's dtype order (increasing alignment). The writer sorts by this rank descending so
 * our files are byte-identical to Python's `safetensors.torch.save_file` for the same tensors.
 */
export const DTYPES: readonly Dtype[] = [
  'BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64',
];

const SIZES: Record<Dtype, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  F64: 8, I64: 8, U64: 8,
};

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SIZES, s);
}

/** Bytes per element. */
export function dtypeSize(d: Dtype): number {
  const s = SIZES[d];
  if (s === undefined) throw new SafetensorsError('UnknownDtype', `unknown dtype ${String(d)}`);
  return s;
}

/** Position in the reference alignment order (higher = written first). */
export function dtypeRank(d: Dtype): number {
  return DTYPES.indexOf(d);
}

/** Number of elements; 1 for a scalar (shape []). Throws ValidationOverflow past 2^53. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new SafetensorsError('ValidationOverflow', `shape [${shape.join(', ')}] has too many elements`);
  }
  return n;
}
