// The per-column kernels of the blocked reductions (pack, reflect, wColumn, scaleTo; wasmColumn.ts) must match
// their JS references bit for bit: packStrided, reflectRun, and columnKernels.ts. Sizes hit the odd paths: a partial
// last 4-row block, odd run lengths (a last single after the f64x2 pairs), odd start offsets, unit and row strides,
// weights, an all-zero run (τ = 0) and runs with signed zeros.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { denseKernels, jsKernels, type DenseKernels } from '../../src/spectrum/denseKernels';
import { bidiagonalizeBlocked } from '../../src/spectrum/bidiagKernel';
import { packStrided } from '../../src/spectrum/gemmKernel';
import { reflectRun } from '../../src/spectrum/householder';
import { bidiagonalize } from '../../src/spectrum/linalg';
import { assertIdentical, gaussian, withKernels } from './spectrumTestUtil';

/** Copies `data` into fresh buffers of `k` (arena views for wasm) and returns them. */
function load(k: DenseKernels, data: Float64Array[]): Float64Array[] {
  const bufs = k.buffers(data.map((d) => d.length));
  bufs.forEach((b, i) => b.set(data[i]));
  return bufs;
}

test('pack: wasm and JS bit-identical to packStrided, with and without weights, on partial blocks and both strides', () => {
  const wasm = withKernels('wasm', () => denseKernels());
  for (const [rows, ld, p0, p1, k] of [[1, 9, 0, 3, 3], [7, 13, 2, 9, 12], [16, 16, 0, 16, 16], [37, 41, 5, 11, 16]]) {
    const src = gaussian(rows * ld + p1 * ld, rows + 3 * ld);
    const wts = gaussian(p1 - p0, 5);
    const len = Math.ceil(rows / 4) * 4 * k;
    // Row-major (rs = ld, ps = 1) and transposed (rs = 1, ps = ld) reads, at an offset, weighted or not.
    const cases: [number, number, number, boolean][] = [[3, ld, 1, false], [1, 1, ld, true], [0, ld, 1, true]];
    for (const [off, rs, ps, weighted] of cases) {
      const want = new Float64Array(len).fill(7);
      packStrided(want, rows, k, p0, p1, src, off, rs, ps, weighted ? wts : undefined);
      for (const kern of [wasm, jsKernels]) {
        const [dst, s, w] = load(kern, [new Float64Array(len).fill(7), src, wts]);
        kern.pack(dst, rows, k, p0, p1, s, off, rs, ps, weighted ? w : undefined);
        assertIdentical(Float64Array.from(dst), want, `${kern.name} pack ${rows}×[${p0}, ${p1}) rs ${rs} ${weighted ? 'weighted' : ''}`);
      }
    }
  }
});

test('reflect: wasm and JS bit-identical to reflectRun (stored run, diag, τ) on odd lengths, strides and zero runs', () => {
  const wasm = withKernels('wasm', () => denseKernels());
  const n = 23;
  const base = gaussian(n * n, 41);
  const zeroCol = Float64Array.from(base);
  for (let r = 0; r < n; r++) zeroCol[r * n + 4] = r % 3 === 0 ? -0 : 0;
  const signed = Float64Array.from(base);
  for (let r = 0; r < n; r++) signed[r * n + 6] = r === 5 ? -2.5 : r % 2 ? 0 : -0;
  // [matrix, off, stride, from, to]: columns (stride n) and rows (stride 1), even and odd lengths, length 1.
  const cases: [Float64Array, number, number, number, number][] = [
    [base, 3, n, 4, n], [base, 3, n, 5, n], [base, 2 * n, 1, 3, n], [base, 5 * n, 1, 6, n], [base, 0, n, n - 1, n],
    [base, 7, n, 0, n], [zeroCol, 4, n, 2, n], [signed, 6, n, 1, n], [signed, 6, n, 5, 12],
  ];
  for (const [mat, off, stride, from, to] of cases) {
    const wantA = Float64Array.from(mat);
    const wantV = new Float64Array(n);
    const want = reflectRun(wantA, off, stride, wantV, from, to, true);
    for (const kern of [wasm, jsKernels]) {
      const [a, v] = load(kern, [mat, new Float64Array(n)]);
      const got = kern.reflect(a, off, stride, v, from, to);
      const what = `${kern.name} reflect off ${off} stride ${stride} [${from}, ${to})`;
      assert.ok(Object.is(got.diag, want.diag) && Object.is(got.tau, want.tau), `${what}: ${got.diag}, ${got.tau} vs ${want.diag}, ${want.tau}`);
      assertIdentical(Float64Array.from(a), wantA, `${what} run`);
      assertIdentical(Float64Array.from(v), wantV, `${what} v`);
    }
  }
  assert.throws(() => wasm.reflect(wasm.buffers([4])[0], 0, 1, new Float64Array(4), 2, 2), RangeError);
});

test('wColumn and scaleTo: wasm and JS kernels bit-identical on odd ranges and strides', () => {
  const wasm = withKernels('wasm', () => denseKernels());
  for (const [c0, n, wo, ws] of [[0, 1, 0, 8], [3, 40, 5, 8], [1, 64, 0, 1], [7, 8, 2, 3]]) {
    const run = (k: DenseKernels) => {
      const [acc, v, w, y] = load(k, [gaussian(n, c0), gaussian(n, 2), gaussian(n * ws + 8, 3), gaussian(n * ws + 8, 4)]);
      k.wColumn(acc, v, c0, n, 1.37, w, wo, ws);
      k.scaleTo(v, c0, n, -0.61, y, wo, ws);
      return [acc, w, y].map((b) => Float64Array.from(b));
    };
    const got = run(wasm);
    const want = run(jsKernels);
    ['acc', 'w', 'y'].forEach((name, i) => assertIdentical(got[i], want[i], `[${c0}, ${n}) ${name}`));
  }
});

test('row kernels of the unblocked bidiagonalisation: wasm and JS bit-identical, zero factors skipped', () => {
  const wasm = withKernels('wasm', () => denseKernels());
  // [rows, lda, r0, c0, c1]: odd and even widths (a last single after the pairs, 0–3 left after the dot's quads).
  for (const [rows, lda, r0, c0, c1] of [[5, 9, 0, 1, 9], [12, 20, 3, 4, 20], [9, 7, 2, 6, 7], [30, 48, 1, 5, 45]]) {
    const v = gaussian(rows, 1);
    v[r0 + 1] = 0; // a skipped row (and, through β·v, a skipped update)
    v[r0 + 2] = -0;
    const run = (k: DenseKernels) => {
      const [a, vv, w] = load(k, [gaussian(rows * lda, lda), v, gaussian(lda, 2)]);
      w[c0] = -0; // −0 + 0·a stays −0 only if the zero row is really skipped
      k.rowsAxpy(a, lda, r0, rows, c0, c1, vv, w);
      k.rowsRank1(a, lda, r0, rows, c0, c1, 0.83, vv, w);
      k.rowsDotRank1(a, lda, r0, rows, c0, c1, -1.21, w);
      return [a, w].map((b) => Float64Array.from(b));
    };
    const got = run(wasm);
    const want = run(jsKernels);
    ['a', 'w'].forEach((name, i) => assertIdentical(got[i], want[i], `${rows}×${lda} [${c0}, ${c1}) ${name}`));
  }
});

test('bidiagonalizeBlocked on small matrices (the unblocked path through the kernels) matches linalg bidiagonalize', () => {
  for (const [m, n] of [[1, 1], [7, 1], [30, 20], [48, 48], [90, 47], [61, 3]]) {
    const a = gaussian(m * n, m * 31 + n);
    if (n > 4) for (let i = 0; i < m; i++) a[i * n + 2] = 0; // a zero column: τ = 0 on the way
    const want = bidiagonalize(Float64Array.from(a), m, n);
    for (const which of ['wasm', 'js'] as const) {
      const got = withKernels(which, () => bidiagonalizeBlocked(Float64Array.from(a), m, n));
      assertIdentical(got.d, want.d, `${which} ${m}×${n} d`);
      assertIdentical(got.e, want.e, `${which} ${m}×${n} e`);
    }
  }
});
