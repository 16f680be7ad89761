// The products of the randomized SVD (A·X and Aᵀ·Y through the strided 4×4 kernel, tile by tile): the WASM SIMD and
// JS kernels give bit-identical results (same operations in the same order), the products agree with plain float64
// loops to rounding, and randomizedSvd gives the same bits under both kernels while its σ match an exact SVD; the
// LoRA residual through the same kernel keeps the bits of plain row-by-row accumulation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loraResidual } from '../../src/adapters/extractLora';
import { randomizedSvd } from '../../src/spectrum/dense';
import { denseKernels, jsKernels, type DenseKernels } from '../../src/spectrum/denseKernels';
import { svdJacobi } from '../../src/spectrum/factor';
import { packStrided } from '../../src/spectrum/gemmKernel';
import { singularValues } from '../../src/spectrum/linalg';
import { mulberry, randn } from '../../src/spectrum/random';
import { mulSkinny, mulSkinnyT } from '../../src/spectrum/skinnyProducts';
import { assertIdentical, gaussian, withKernels } from './spectrumTestUtil';

/** Plain float64 reference: Y = A·X [m, l] or, transposed, Z = Aᵀ·Y [n, l]. */
function reference(a: ArrayLike<number>, m: number, n: number, x: Float64Array, l: number, transposed: boolean): Float64Array {
  const out = new Float64Array((transposed ? n : m) * l);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const aij = a[i * n + j];
      for (let t = 0; t < l; t++) {
        if (transposed) out[j * l + t] += aij * x[i * l + t];
        else out[i * l + t] += aij * x[j * l + t];
      }
    }
  }
  return out;
}

test('gemmStrided: wasm and JS twins are bit-identical, and with a packed Ā they equal the packed gemm', () => {
  const wasm = withKernels('wasm', () => denseKernels());
  for (const [rows, k, cols] of [[13, 7, 8], [16, 33, 12], [3, 5, 4], [4, 1, 28]]) {
    const A = gaussian(rows * k, rows + k);
    const B = gaussian(k * cols, 3 * k + cols);
    const C = gaussian(rows * cols, 5);
    const padded = (r: number) => Math.ceil(r / 4) * 4 * k;
    const run = (kern: DenseKernels) => {
      const [a, pa, pb, c1, c2, c3] = kern.buffers([rows * k, padded(rows), padded(cols), rows * cols, rows * cols, rows * cols]);
      a.set(A);
      c1.set(C);
      c2.set(C);
      c3.set(C);
      packStrided(pa, rows, k, 0, k, A, 0, k, 1);
      packStrided(pb, cols, k, 0, k, B, 0, 1, cols);
      kern.gemmStrided(c1, 0, cols, rows, cols, k, a, 0, 4 * k, k, 1, pb); // row-major Ā in place
      kern.gemmStrided(c2, 0, cols, rows, cols, k, pa, 0, 4 * k, 1, 4, pb); // the packed layout through strides
      kern.gemmSub(c3, 0, cols, rows, cols, k, pa, pb);
      return [c1, c2, c3].map((c) => Float64Array.from(c));
    };
    const [w1, w2, w3] = run(wasm);
    const [j1, j2, j3] = run(jsKernels);
    assertIdentical(w1, j1, `${rows}×${k}×${cols} strided`);
    assertIdentical(w2, j2, `${rows}×${k}×${cols} strided packed`);
    assertIdentical(w1, w3, `${rows}×${k}×${cols} strided vs gemm`);
    assertIdentical(j2, j3, `${rows}×${k}×${cols} JS strided vs JS gemm`);
  }
  assert.throws(() => jsKernels.gemmStrided(new Float64Array(4), 0, 3, 1, 3, 1, new Float64Array(4), 0, 4, 1, 1, new Float64Array(4)), RangeError);
});

test('mulSkinny / mulSkinnyT: bit-identical under both kernels, equal to plain loops to rounding', () => {
  // Sizes past one tile in both directions (64 rows, 256 deep), odd edges, l = 1 and l not a multiple of 4.
  for (const [m, n, l] of [[300, 517, 26], [5, 3, 1], [257, 64, 7], [70, 1030, 4], [1, 9, 3]]) {
    const a64 = gaussian(m * n, m * 7 + n);
    const a32 = Float32Array.from(a64);
    const x = gaussian(n * l, 11);
    const y = gaussian(m * l, 12);
    for (const a of [a64, a32]) {
      const what = `${m}×${n}, l=${l}, ${a instanceof Float32Array ? 'f32' : 'f64'}`;
      const [wy, wz] = withKernels('wasm', () => [mulSkinny(a, m, n, x, l), mulSkinnyT(a, m, n, y, l)]);
      const [jy, jz] = withKernels('js', () => [mulSkinny(a, m, n, x, l), mulSkinnyT(a, m, n, y, l)]);
      assertIdentical(wy, jy, `A·X ${what}`);
      assertIdentical(wz, jz, `Aᵀ·Y ${what}`);
      for (const [got, want, name] of [[wy, reference(a, m, n, x, l, false), 'A·X'], [wz, reference(a, m, n, y, l, true), 'Aᵀ·Y']] as const) {
        const scale = want.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
        const err = got.reduce((s, v, i) => Math.max(s, Math.abs(v - want[i])), 0);
        // Sums of ≤ 1030 products of unit Gaussians: measured ≤ 4e-16·max|·|; 1e-13 leaves room for any order.
        assert.ok(err <= 1e-13 * scale, `${name} ${what}: ${err} vs max ${scale}`);
      }
    }
  }
});

test('randomizedSvd: the same bits under both kernels; σ match the exact SVD of a 600×350 matrix', () => {
  const [m, n] = [600, 350];
  // A decaying spectrum (σ_i ∝ 0.7^i) with random factors.
  const p = 60;
  const U = gaussian(m * p, 1);
  const V = gaussian(n * p, 2);
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let t = 0; t < p; t++) {
    const u = U[i * p + t] * 0.7 ** t;
    for (let j = 0; j < n; j++) a[i * n + j] += u * V[j * p + t];
  }
  const w = withKernels('wasm', () => randomizedSvd(a, m, n, 12));
  const j = withKernels('js', () => randomizedSvd(a, m, n, 12));
  for (const key of ['s', 'upper', 'u', 'v'] as const) assertIdentical(w[key], j[key], key);
  assert.ok(Object.is(w.residual, j.residual) && Object.is(w.frobenius, j.frobenius));
  const exact = singularValues(a, m, n);
  const worst = Math.max(...Array.from({ length: 12 }, (_, i) => Math.abs(w.s[i] - exact[i]) / exact[0]));
  if (process.env.EXTRACT_DEBUG) console.log('randomized σ, worst error / σ_1', worst);
  // 3 power iterations, 10 extra columns, σ_22/σ_12 = 0.7^10 ≈ 0.03: measured 1.3e-15 relative to σ_1.
  assert.ok(worst <= 1e-12, `worst |σ − σ_exact| / σ_1 = ${worst}`);
});

test('svdJacobi on long columns with clustered singular values: σ and orthonormality within the √m·ε stopping rule', () => {
  // A Gaussian 6000×26 matrix: every σ is √6000 ± √26, like the flat-spectrum sketches of a bf16 merge's ΔW (one such
  // Bᵀ, 5632×26, churned at 1–3 ε for 60 sweeps under the former bare-ε rule; its data is not reproducible here).
  const [m, n] = [6000, 26];
  const a = gaussian(m * n, 21);
  const svd = svdJacobi(a, m, n);
  const exact = singularValues(a, m, n);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(svd.s[i] - exact[i]) <= 1e-12 * exact[0], `σ_${i}`);
  // Columns of U orthonormal to the tolerance the stopping rule allows (√m·ε ≈ 1.7e-14).
  for (let p = 0; p < n; p++) for (let q = p; q < n; q++) {
    let dot = 0;
    for (let i = 0; i < m; i++) dot += svd.u[i * n + p] * svd.u[i * n + q];
    assert.ok(Math.abs(dot - (p === q ? 1 : 0)) <= 1e-12, `UᵀU[${p}, ${q}] = ${dot}`);
  }
});

test('loraResidual through the kernel: the same bits as row-by-row accumulation, under both kernels', () => {
  // The former implementation: row o of B·A summed over t in order (zero b skipped), subtracted, squared, summed.
  const reference = (dW: Float64Array, outF: number, inF: number, A: Float32Array, B: Float32Array, r: number) => {
    const row = new Float64Array(inF);
    let sum = 0;
    for (let o = 0; o < outF; o++) {
      row.fill(0);
      for (let t = 0; t < r; t++) {
        const b = B[o * r + t];
        if (b === 0) continue;
        for (let i = 0; i < inF; i++) row[i] += b * A[t * inF + i];
      }
      for (let i = 0; i < inF; i++) sum += (dW[o * inF + i] - row[i]) ** 2;
    }
    return Math.sqrt(sum);
  };
  // Shapes with partial row tiles (16 rows) and blocks, in not a multiple of 4, r = 1.
  for (const [outF, inF, r] of [[37, 29, 3], [64, 48, 16], [5, 3, 1], [100, 130, 7]]) {
    const rnd = mulberry(outF * inF);
    const dW = Float64Array.from({ length: outF * inF }, () => (rnd() < 0.5 ? 0 : randn(rnd)));
    const A = Float32Array.from({ length: r * inF }, () => randn(rnd));
    const B = Float32Array.from({ length: outF * r }, () => (rnd() < 0.2 ? 0 : randn(rnd)));
    const want = reference(dW, outF, inF, A, B, r);
    for (const which of ['wasm', 'js'] as const) {
      const got = withKernels(which, () => loraResidual(dW, outF, inF, A, B, r));
      assert.ok(Object.is(got, want), `${outF}×${inF} r=${r} ${which}: ${got} vs ${want}`);
    }
  }
});
