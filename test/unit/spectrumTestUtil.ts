// Shared by the spectrum kernel tests: seeded Gaussian data, bit-identity between the wasm and JS paths, and a
// scope with one kernel set selected.
import assert from 'node:assert/strict';
import { setDenseKernels } from '../../src/spectrum/denseKernels';
import { mulberry, randn } from '../../src/spectrum/random';

export function gaussian(n: number, seed: number): Float64Array {
  const rnd = mulberry(seed);
  return Float64Array.from({ length: n }, () => randn(rnd));
}

export function assertIdentical(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Object.is(a[i], b[i]), `${what}[${i}]: wasm ${a[i]} vs js ${b[i]}`);
}

/** Runs `f` with the given kernels selected, restoring automatic selection afterwards. */
export function withKernels<T>(which: 'js' | 'wasm' | 'wasm-fma', f: () => T): T {
  assert.equal(setDenseKernels(which), which);
  try {
    return f();
  } finally {
    setDenseKernels('auto');
  }
}
