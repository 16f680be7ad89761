// The fits behind `mora extract`: MoRA least squares recovers M exactly when ΔW = ΔW(M) and leaves a residual
// orthogonal to every ΔW(E); LoRA factors reach the Eckart–Young error of an independent SVD (bidiagonal + dqds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moraChunks, moraDeltaW, moraRank, type MoraType } from '../../src/adapters';
import { loraFit, loraResidual } from '../../src/adapters/extractLora';
import { moraFit, moraResidual } from '../../src/adapters/extractMora';
import { singularValues } from '../../src/spectrum/linalg';
import { Rng } from '../../src/util/rng';

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
const frob = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0));

// [in, out, r]: in/out not multiples of r̂ (padding wraps), out > L (tiling, uneven for type 1), out < L (truncation),
// s = in % r̂ = 1 (type 1's longest chains), and in = r̂·k.
const shapes: [number, number, number][] = [[48, 48, 4], [48, 24, 4], [48, 136, 4], [136, 48, 4], [37, 29, 2], [64, 176, 8], [40, 40, 5], [7, 7, 3]];

test('moraFit recovers M from ΔW(M) for types 1 and 6 (padding, wrap, tiling, truncation)', () => {
  const rng = new Rng(5);
  const seen = { pad: 0, tile: 0, trunc: 0 };
  for (const type of [1, 6] as MoraType[]) {
    for (const [inF, outF, r] of shapes) {
      const rHat = moraRank(inF, outF, r, type);
      assert.ok(inF > rHat && outF >= rHat, `${inF}x${outF}: the fixture must determine M`);
      const L = type === 1 ? rHat : moraChunks(inF, rHat) * rHat;
      if (inF % rHat !== 0) seen.pad++;
      if (outF > L) seen.tile++;
      if (outF < L) seen.trunc++;
      const M = rng.normalArray(rHat * rHat);
      const dW = Float64Array.from(moraDeltaW(M, rHat, inF, outF, type));
      const fit = moraFit(dW, inF, outF, rHat, type);
      // ΔW(M) is rounded to float32 by moraDeltaW; M comes back to that rounding (measured ≤ 2.9e-8·max|M|).
      assert.ok(maxDiff(fit, M) <= 2e-7 * maxAbs(M), `type ${type} ${inF}x${outF} r̂=${rHat}: max |ΔM| = ${maxDiff(fit, M)}`);
      assert.ok(moraResidual(dW, Float32Array.from(fit), rHat, inF, outF, type) <= 1e-6 * frob(dW));
    }
  }
  assert.ok(seen.pad >= 10 && seen.tile >= 4 && seen.trunc >= 4, JSON.stringify(seen));
});

test('moraFit on an arbitrary ΔW: the residual is orthogonal to ΔW(E) for every E (normal equations hold)', () => {
  const rng = new Rng(6);
  // Also shapes where M is not determined: in ≤ r̂ (columns fold) and out < r̂ (rows of M unobserved).
  const all: [number, number, number][] = [...shapes, [10, 30, 4], [5, 30, 4], [30, 5, 4], [100, 7, 1]];
  for (const type of [1, 6] as MoraType[]) {
    for (const [inF, outF, r] of all) {
      const rHat = moraRank(inF, outF, r, type);
      const dW = Float64Array.from({ length: inF * outF }, () => rng.normal());
      const M = moraFit(dW, inF, outF, rHat, type);
      const fit = moraDeltaW(Float32Array.from(M), rHat, inF, outF, type);
      const res = Float64Array.from(dW, (x, i) => x - fit[i]);
      for (let t = 0; t < 4; t++) {
        const dE = moraDeltaW(rng.normalArray(rHat * rHat), rHat, inF, outF, type);
        const cos = res.reduce((s, x, i) => s + x * dE[i], 0) / (frob(res) * frob(dE));
        assert.ok(Math.abs(cos) <= 1e-6, `type ${type} ${inF}x${outF}: cos(residual, ΔW(E)) = ${cos}`);
      }
    }
  }
});

test('moraFit where M is not determined: the same ΔW from a minimum-norm M', () => {
  const rng = new Rng(7);
  for (const type of [1, 6] as MoraType[]) {
    for (const [inF, outF, r] of [[10, 30, 4], [5, 30, 4], [30, 5, 4], [100, 7, 1]] as [number, number, number][]) {
      const rHat = moraRank(inF, outF, r, type);
      assert.ok(inF <= rHat || outF < rHat);
      const M = rng.normalArray(rHat * rHat);
      const dW = moraDeltaW(M, rHat, inF, outF, type);
      const fit = moraFit(Float64Array.from(dW), inF, outF, rHat, type);
      assert.ok(maxDiff(moraDeltaW(Float32Array.from(fit), rHat, inF, outF, type), dW) <= 1e-6 * maxAbs(dW));
      assert.ok(frob(fit) < frob(M), `type ${type} ${inF}x${outF}: ‖M̂‖ ${frob(fit)} ≥ ‖M‖ ${frob(M)}`);
    }
  }
});

/** A dense [m, n] matrix with singular values σ_i (random orthogonal-ish factors from a product of two Gaussians). */
function withSpectrum(rng: Rng, m: number, n: number, sigma: (i: number) => number): Float64Array {
  const k = Math.min(m, n);
  const U = rng.normalArray(m * k);
  const V = rng.normalArray(n * k);
  const a = new Float64Array(m * n);
  for (let t = 0; t < k; t++) {
    const s = sigma(t) / Math.sqrt(m * n); // Gaussian columns have norm ≈ √m, √n: σ up to a random factor
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] += s * U[i * k + t] * V[j * k + t];
  }
  return a;
}

test('loraFit, exact SVD: error = sqrt(Σ_{i>r} σ_i²) / ‖ΔW‖_F of an independent SVD, σ match', () => {
  const rng = new Rng(8);
  for (const [m, n, r] of [[48, 48, 3], [24, 48, 5], [136, 48, 8], [48, 136, 1]]) {
    const dW = withSpectrum(rng, m, n, (i) => 0.85 ** i);
    const sigma = singularValues(dW, m, n);
    const fit = loraFit(dW, m, n, r);
    assert.equal(fit.exact, true);
    for (let i = 0; i < r; i++) assert.ok(Math.abs(fit.sigma[i] - sigma[i]) <= 1e-12 * sigma[0], `σ_${i}`);
    const tail = Math.sqrt(sigma.slice(r).reduce((s, x) => s + x * x, 0));
    const err = loraResidual(dW, m, n, fit.A, fit.B, r) / frob(dW);
    const want = tail / frob(dW);
    assert.ok(want > 0.1, 'the truncation must matter');
    // Measured ≤ 1.3e-14 relative: the float32 rounding of the factors is orthogonal noise next to the tail.
    assert.ok(Math.abs(err - want) <= 1e-9 * want, `${m}x${n} r=${r}: ${err} vs ${want}`);
    // The even split: A·Aᵀ = B·Bᵀ's r×r Gram = diag(σ) (both factors carry √σ).
    for (let t = 0; t < r; t++) {
      let aa = 0;
      let bb = 0;
      for (let j = 0; j < n; j++) aa += fit.A[t * n + j] ** 2;
      for (let i = 0; i < m; i++) bb += fit.B[i * r + t] ** 2;
      assert.ok(Math.abs(aa - sigma[t]) <= 1e-6 * sigma[0] && Math.abs(bb - sigma[t]) <= 1e-6 * sigma[0]);
    }
  }
});

test('loraFit, randomized SVD: within 1e-9 of the Eckart–Young error on a 300×200 matrix', () => {
  const rng = new Rng(9);
  const [m, n] = [300, 200];
  const dW = withSpectrum(rng, m, n, (i) => 0.8 ** i);
  const sigma = singularValues(dW, m, n);
  for (const r of [4, 12]) {
    const fit = loraFit(dW, m, n, r, { exactMaxDim: 0 });
    assert.equal(fit.exact, false);
    const want = Math.sqrt(sigma.slice(r).reduce((s, x) => s + x * x, 0)) / frob(dW);
    const err = loraResidual(dW, m, n, fit.A, fit.B, r) / frob(dW);
    // Measured 1.7e-13 above the optimum at r = 12 (3 power iterations, 10 extra columns).
    assert.ok(err >= want * (1 - 1e-9) && err <= want * (1 + 1e-9), `r=${r}: ${err} vs optimum ${want}`);
  }
  // A ΔW of exact rank 5 is captured to float32 rounding of the factors.
  const low = withSpectrum(rng, m, n, (i) => (i < 5 ? 1 + i : 0));
  const fit = loraFit(low, m, n, 5, { exactMaxDim: 0 });
  assert.ok(loraResidual(low, m, n, fit.A, fit.B, 5) / frob(low) <= 1e-6);
});
