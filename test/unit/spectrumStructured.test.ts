// The structured spectra must equal the dense SVD of the ΔW the adapters module builds: this is what catches a
// wrong reading of the MoRA padding/truncation/tiling rules or of the RoPE rotation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loraDeltaW, moraDeltaW, type MoraType } from '../../src/adapters';
import { singularValues } from '../../src/spectrum/linalg';
import { loraSingularValues } from '../../src/spectrum/lowRank';
import { moraSingularValues } from '../../src/spectrum/moraSpectrum';
import { mulberry, randn } from '../../src/spectrum/random';

function randomMatrix(n: number, seed: number, scale = 1): Float32Array {
  const rnd = mulberry(seed);
  return Float32Array.from({ length: n }, () => scale * randn(rnd));
}

/** Pads a partial spectrum with the structural zeros up to min(out, in). */
function full(s: Float64Array, count: number): Float64Array {
  const out = new Float64Array(count);
  out.set(s.subarray(0, Math.min(count, s.length)));
  for (let i = count; i < s.length; i++) assert.ok(s[i] <= 1e-9 * (s[0] || 1), `extra σ beyond min(out,in) must be 0, got ${s[i]}`);
  return out;
}

function assertSameSpectrum(structured: Float64Array, dense: Float64Array, what: string): void {
  const tol = 2e-6 * Math.max(dense[0], 1e-30); // ΔW is float32, so σ agree to float32 rounding of the entries
  const s = full(structured, dense.length);
  for (let i = 0; i < dense.length; i++) {
    assert.ok(Math.abs(s[i] - dense[i]) <= tol, `${what}: σ[${i}] structured ${s[i]} vs dense ${dense[i]}`);
  }
}

// [type, r̂, in, out, why]
const CASES: [MoraType, number, number, number, string][] = [
  [1, 8, 24, 24, 'r̂ divides in and out (closed form)'],
  [1, 8, 30, 20, 'in % r̂ ≠ 0 (padding), out % r̂ ≠ 0 (tiling remainder)'],
  [1, 8, 20, 5, 'out < r̂ (decompressor truncates)'],
  [1, 8, 5, 13, 'in < r̂ (padding wraps more than once)'],
  [1, 7, 45, 64, 'odd r̂, in ≠ out'],
  [6, 8, 32, 32, 'r̂ divides in = out (closed form)'],
  [6, 8, 32, 64, 'out = 2·in: tiled twice (closed form ×√2)'],
  [6, 8, 30, 45, 'padding couples chunks 0 and 3, output tiled with a remainder'],
  [6, 8, 50, 20, 'out < r̂·chunks: truncated inside a chunk'],
  [6, 8, 6, 10, 'in < r̂: the single chunk pads from itself'],
  [6, 10, 36, 100, 'r̂ = 10, pad 4, tile boundary inside a chunk'],
  [6, 6, 40, 9, 'truncation leaves one and a half chunks'],
];

for (const [type, rHat, inF, outF, why] of CASES) {
  test(`MoRA type ${type} r̂=${rHat} ${inF}→${outF}: structured σ = dense SVD of moraDeltaW (${why})`, () => {
    const M = randomMatrix(rHat * rHat, 1000 + inF * 7 + outF);
    const dW = moraDeltaW(M, rHat, inF, outF, type);
    const dense = singularValues(dW, outF, inF);
    const got = moraSingularValues(M, rHat, inF, outF, type);
    assertSameSpectrum(got.sigma, dense, why);
  });
}

test('closed forms: type 6 repeats σ(M) in/r̂ times (×√t when tiled t times), type 1 scales σ(M) by √(in·out)/r̂', () => {
  const M = randomMatrix(64, 42);
  const sm = singularValues(M, 8, 8);
  const t6 = moraSingularValues(M, 8, 32, 64, 6);
  assert.equal(t6.method, 'closed-form');
  assert.equal(t6.sigma.length, 32);
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(t6.sigma[i] - Math.SQRT2 * sm[Math.floor(i / 4)]) < 1e-12 * sm[0]);
  const t1 = moraSingularValues(M, 8, 24, 40, 1);
  assert.equal(t1.method, 'closed-form');
  assert.equal(t1.sigma.length, 8);
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(t1.sigma[i] - (Math.sqrt(24 * 40) / 8) * sm[i]) < 1e-12 * sm[0]);
  assert.equal(moraSingularValues(M, 8, 30, 45, 6).method, 'structured');
});

test('a zero M (fresh adapter) gives an all-zero spectrum', () => {
  const s = moraSingularValues(new Float32Array(64), 8, 30, 45, 6).sigma;
  assert.ok(s.length > 0 && s.every((x) => x === 0));
});

for (const [r, inF, outF] of [[4, 37, 23], [3, 5, 40], [6, 4, 9]] as const) {
  test(`LoRA r=${r} ${inF}→${outF}: σ from QR + r×r core = dense SVD of loraDeltaW`, () => {
    const A = randomMatrix(r * inF, r + inF);
    const B = randomMatrix(outF * r, r + outF);
    const scaling = 16 / r;
    const dense = singularValues(loraDeltaW(A, B, r, inF, outF, scaling), outF, inF);
    const got = loraSingularValues(A, B, r, inF, outF, scaling);
    assert.equal(got.length, Math.min(r, inF, outF));
    assertSameSpectrum(got, dense, 'lora');
  });
}

test('dense path regression: MoRA type 1 ΔW 1024×1024 (rank 128, 896 exact zeros) converges and matches (≈1.5 s)', () => {
  // This matrix once stalled the tridiagonal QL on the rounding noise of its null space.
  const rHat = 128;
  const M = randomMatrix(rHat * rHat, 1024, 0.02);
  const dense = singularValues(moraDeltaW(M, rHat, 1024, 1024, 1), 1024, 1024);
  assertSameSpectrum(moraSingularValues(M, rHat, 1024, 1024, 1).sigma, dense, 'type 1, 1024');
  assert.ok(dense[128] <= 1e-12 * dense[0]);
});
