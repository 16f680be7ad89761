// The panel-correction kernels (corr, colsT) at every width the reductions use (2, 4, 6, 8): the WASM twin is
// bit-identical to the JS one, both are within rounding of a plain double loop, and a narrower width over the same
// active columns (zero weights past them) gives bit-identical results to a wider one — which is what lets the
// reductions pass their active columns rounded up to even instead of the whole panel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { denseKernels, jsKernels, type DenseKernels } from '../../src/spectrum/denseKernels';
import { PANEL_WIDTHS } from '../../src/spectrum/wasmKernels';
import { assertIdentical, gaussian, withKernels } from './spectrumTestUtil';

const LDX = 10; // X row stride: wider than the panel, with a free column 9 for the strided output
const LDA = 37; // A row stride: odd, so A rows alternate between aligned and unaligned f64x2 pairs

interface Result {
  corr: Float64Array;
  strided: Float64Array;
  t1: Float64Array;
  t2: Float64Array;
}

/**
 * corr into a vector (scale 0.75) and into a strided column, and colsT, over rows [r0, r1) of A (panel from column
 * ao) and X, with the first `active` weights of t1/t2 nonzero.
 */
function run(k: DenseKernels, width: number, active: number, r0: number, r1: number, ao: number, seed: number): Result {
  const A = gaussian(r1 * LDA, seed);
  const X = gaussian(r1 * LDX, seed + 1);
  const v = gaussian(r1, seed + 2);
  const out = gaussian(r1, seed + 3);
  const t1 = gaussian(32, seed + 4).fill(0, active);
  const t2 = gaussian(32, seed + 5).fill(0, active);
  const c1 = gaussian(32, seed + 6);
  const c2 = gaussian(32, seed + 7);
  const lengths = [A.length, X.length, v.length, out.length, X.length, 32, 32, 32, 32];
  const [a, x, vv, o, xs, tt1, tt2, s1, s2] = k.buffers(lengths);
  [A, X, v, out, X, t1, t2, c1, c2].forEach((d, i) => [a, x, vv, o, xs, tt1, tt2, s1, s2][i].set(d));
  k.corr(a, ao, LDA, x, 0, LDX, r0, r1, tt1, tt2, o, 0, 1, 0.75, width);
  // Strided output: column 9 of X's rows (past every panel width), as the bidiagonal panel's X column.
  k.corr(a, ao, LDA, x, 0, LDX, r0, r1, tt1, tt2, xs, 9, LDX, 1, width);
  k.colsT(a, ao, LDA, x, 0, LDX, r0, r1, vv, s1, s2, width);
  const col = Float64Array.from({ length: r1 }, (_, r) => xs[r * LDX + 9]);
  return { corr: Float64Array.from(o), strided: col, t1: Float64Array.from(s1), t2: Float64Array.from(s2) };
}

test('corr and colsT: wasm bit-identical to JS at every panel width, on odd row ranges and offsets', () => {
  assert.deepEqual(PANEL_WIDTHS, [2, 4, 6, 8]);
  const wasm = withKernels('wasm', () => denseKernels());
  for (const width of PANEL_WIDTHS) {
    for (const [r0, r1, ao] of [[0, 1, 0], [3, 40, 1], [5, 6, 2]]) {
      const got = run(wasm, width, width, r0, r1, ao, width * 10 + r0);
      const want = run(jsKernels, width, width, r0, r1, ao, width * 10 + r0);
      for (const key of ['corr', 'strided', 't1', 't2'] as const) assertIdentical(got[key], want[key], `width ${width} rows ${r0}..${r1} ${key}`);
    }
  }
});

test('corr and colsT agree with a plain double loop to rounding (both wasm builds)', () => {
  const [r0, r1, ao, seed] = [2, 45, 3, 99];
  const A = gaussian(r1 * LDA, seed);
  const X = gaussian(r1 * LDX, seed + 1);
  const v = gaussian(r1, seed + 2);
  const out = gaussian(r1, seed + 3);
  const t1 = gaussian(32, seed + 4);
  const t2 = gaussian(32, seed + 5);
  const c1 = gaussian(32, seed + 6);
  const c2 = gaussian(32, seed + 7);
  // (run() draws the same data from the same seeds.)
  for (const [kern, width] of (['wasm', 'wasm-fma'] as const).flatMap((kern) => PANEL_WIDTHS.map((w) => [kern, w] as const))) {
    const got = withKernels(kern, () => run(denseKernels(), width, width, r0, r1, ao, seed));
    for (let r = 0; r < r1; r++) {
      let s = 0;
      let mag = Math.abs(out[r]);
      if (r >= r0) {
        for (let p = 0; p < width; p++) {
          s += A[r * LDA + ao + p] * t1[p] + X[r * LDX + p] * t2[p];
          mag += Math.abs(A[r * LDA + ao + p] * t1[p]) + Math.abs(X[r * LDX + p] * t2[p]);
        }
      }
      const want = r >= r0 ? (out[r] - s) * 0.75 : out[r];
      assert.ok(Math.abs(got.corr[r] - want) <= 2 * (width + 3) * 1.12e-16 * mag, `corr width ${width} row ${r}: ${got.corr[r]} vs ${want}`);
    }
    for (let p = 0; p < 32; p++) {
      let s1 = c1[p];
      let s2 = c2[p];
      let m1 = Math.abs(s1);
      let m2 = Math.abs(s2);
      for (let r = r0; r < r1 && p < width; r++) {
        s1 += A[r * LDA + ao + p] * v[r];
        s2 += X[r * LDX + p] * v[r];
        m1 += Math.abs(A[r * LDA + ao + p] * v[r]);
        m2 += Math.abs(X[r * LDX + p] * v[r]);
      }
      assert.ok(Math.abs(got.t1[p] - s1) <= 2 * (r1 - r0 + 1) * 1.12e-16 * m1, `colsT t1 width ${width} [${p}]`);
      assert.ok(Math.abs(got.t2[p] - s2) <= 2 * (r1 - r0 + 1) * 1.12e-16 * m2, `colsT t2 width ${width} [${p}]`);
    }
  }
});

test('corr over the active columns rounded up to even is bit-identical to corr over any wider panel', () => {
  // Zero weights past the active columns add exact zeros to each lane, so the width only changes the cost.
  for (const kern of ['wasm', 'wasm-fma', 'js'] as const) {
    const k = withKernels(kern, () => denseKernels());
    for (let active = 1; active <= 8; active++) {
      const narrow = (active + 1) & ~1;
      const want = run(k, 8, active, 1, 30, 0, active);
      for (const width of PANEL_WIDTHS.filter((w) => w >= narrow)) {
        const got = run(k, width, active, 1, 30, 0, active);
        assertIdentical(got.corr, want.corr, `${kern} active ${active} width ${width} corr`);
        assertIdentical(got.strided, want.strided, `${kern} active ${active} width ${width} strided corr`);
        // colsT's sums are independent per column: the first `width` of them agree.
        assertIdentical(got.t1.subarray(0, width), want.t1.subarray(0, width), `${kern} active ${active} width ${width} colsT`);
      }
    }
  }
});

test('the panel kernels refuse a width they have no kernel for', () => {
  for (const kern of ['wasm', 'js'] as const) {
    const k = withKernels(kern, () => denseKernels());
    const [a, t] = k.buffers([64, 40]);
    for (const width of [0, 7, 10, 16]) {
      assert.throws(() => k.corr(a, 0, 8, a, 0, 8, 0, 4, t, t, t, 0, 1, 1, width), RangeError);
      assert.throws(() => k.colsT(a, 0, 8, a, 0, 8, 0, 4, t, t, t, width), RangeError);
    }
  }
});
