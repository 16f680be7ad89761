// The fused-multiply–add build of the WASM kernels ('wasm-fma', relaxed SIMD's relaxed_madd) is not bit-identical to
// the JS twins: each fused step rounds once instead of twice, and atv, symv and corr sum in a slightly different order.
// Both sides are sums of `terms` products (plus a start value) in some order, each within γ_terms·M of the exact sum,
// M = Σ|products| + |start|, so they must agree to |Δ| ≤ (terms + 2)·eps·M per element; M comes from the JS twin run
// on the absolute values of the same data. The shapes are those of the bit-identity tests (spectrumWasm,
// spectrumPanel, skinnyProducts). End to end, MoRA spectra of LLaMA-2-7B-shaped modules must agree with the exact
// path to 1e-11·σ_max (the type-6 Gram route amplifies last-bit changes to ~3e-12·σ_max).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moraRank, type MoraType } from '../../src/adapters';
import { denseKernels, jsKernels, setDenseKernels, type DenseKernels } from '../../src/spectrum/denseKernels';
import { packStrided } from '../../src/spectrum/gemmKernel';
import { moraSingularValues } from '../../src/spectrum/moraSpectrum';
import { mulberry, randn } from '../../src/spectrum/random';
import { PANEL_WIDTHS } from '../../src/spectrum/wasmKernels';
import { wasmRelaxedSimdSupported } from '../../src/util/wasmRelaxed';
import { gaussian, withKernels } from './spectrumTestUtil';

const EPS = 2 ** -52;

test('relaxed SIMD is available (Node ≥ 20 with the flag turned on at run time), and MORA_KERNELS picks the build', () => {
  assert.equal(wasmRelaxedSimdSupported(), true);
  const was = process.env.MORA_KERNELS;
  try {
    delete process.env.MORA_KERNELS;
    assert.equal(setDenseKernels('auto'), 'wasm-fma');
    process.env.MORA_KERNELS = 'wasm-nofma';
    assert.equal(setDenseKernels('auto'), 'wasm');
    process.env.MORA_KERNELS = 'js';
    assert.equal(setDenseKernels('auto'), 'js');
    assert.equal(setDenseKernels('wasm-fma'), 'wasm-fma');
    assert.notEqual(denseKernels(), withKernels('wasm', () => denseKernels()));
  } finally {
    if (was === undefined) delete process.env.MORA_KERNELS;
    else process.env.MORA_KERNELS = was;
    setDenseKernels('auto');
  }
});

/**
 * One kernel call on fresh buffers of `k`. With `abs`, every input is replaced by its absolute value and the values
 * that the kernel subtracts from (`neg`) by minus theirs, so the result's magnitude is M of the bound.
 */
type Scenario = { what: string; terms: number; run: (k: DenseKernels, abs: boolean) => Float64Array };

function scenario(what: string, terms: number, inputs: Float64Array[], neg: number[], call: (k: DenseKernels, b: Float64Array[]) => Float64Array): Scenario {
  return {
    what,
    terms,
    run: (k, abs) => {
      const bufs = k.buffers(inputs.map((d) => d.length));
      inputs.forEach((d, i) => bufs[i].set(abs ? d.map((x) => (neg.includes(i) ? -Math.abs(x) : Math.abs(x))) : d));
      return Float64Array.from(call(k, bufs));
    },
  };
}

function kernelScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const [m, n, r0, c0] of [[37, 29, 3, 5], [64, 64, 0, 0], [9, 50, 1, 1], [101, 7, 4, 2], [5, 5, 4, 4]]) {
    const seed = m * 100 + n;
    const A = gaussian(m * n, seed);
    const v = gaussian(Math.max(m, n), seed + 1);
    const acc = gaussian(Math.max(m, n), seed + 2);
    out.push(scenario(`atv ${m}×${n}`, m - r0 + 1, [A, v, acc], [], (k, [a, vv, ac]) => (k.atv(a, n, r0, m, c0, n, vv, ac), ac)));
    out.push(scenario(`av ${m}×${n}`, n - c0, [A, v, new Float64Array(m * 8)], [], (k, [a, u, x]) => (k.av(a, n, r0, m, c0, n, u, x, 3, 8), x)));
    const sq = Math.min(m, n);
    const cs = Math.min(c0, sq);
    out.push(scenario(`symv ${sq} from ${cs}`, sq - cs + 1, [A, v, acc], [], (k, [a, vv, ac]) => (k.symv(a, n, cs, sq, vv, ac), ac)));
    // Packed rank-k update (C −= Ā·B̄), full and lower, partial 4×4 blocks at both edges.
    const kk = 5;
    const X = gaussian(m * kk, seed + 3);
    const B = gaussian(kk * n, seed + 4);
    const pad = (rows: number) => new Float64Array(Math.ceil(rows / 4) * 4 * kk);
    const gemm = (lower: boolean) => (k: DenseKernels, [c, x, b, pa, pb]: Float64Array[]) => {
      packStrided(pa, m, kk, 0, kk, x, 0, kk, 1);
      packStrided(pb, n, kk, 0, kk, b, 0, 1, n);
      if (lower) k.gemmSub(c, 0, n, sq, sq, kk, pa, pb, true);
      else k.gemmSub(c, 0, n, m, n, kk, pa, pb);
      return c;
    };
    out.push(scenario(`gemm ${m}×${kk}×${n}`, kk + 1, [A, X, B, pad(m), pad(n)], [0], gemm(false)));
    out.push(scenario(`gemm lower ${sq}`, kk + 1, [A, X, B, pad(m), pad(n)], [0], gemm(true)));
  }
  for (const [rows, k, cols] of [[13, 7, 8], [16, 33, 12], [3, 5, 4], [4, 1, 28]]) {
    const A = gaussian(rows * k, rows + k);
    const B = gaussian(k * cols, 3 * k + cols);
    const C = gaussian(rows * cols, 5);
    const pb = new Float64Array(Math.ceil(cols / 4) * 4 * k);
    out.push(scenario(`gemmStrided ${rows}×${k}×${cols}`, k + 1, [C, A, B, pb], [0], (kern, [c, a, b, p]) => {
      packStrided(p, cols, k, 0, k, b, 0, 1, cols);
      kern.gemmStrided(c, 0, cols, rows, cols, k, a, 0, 4 * k, k, 1, p);
      return c;
    }));
  }
  // Panel corrections: A rows of odd stride 37 from column ao, X rows of stride 10, every width.
  for (const width of PANEL_WIDTHS) {
    for (const [r0, r1, ao] of [[0, 1, 0], [3, 40, 1], [5, 6, 2], [2, 45, 3]]) {
      const seed = width * 10 + r0;
      const data = [gaussian(r1 * 37, seed), gaussian(r1 * 10, seed + 1), gaussian(r1, seed + 2), gaussian(8, seed + 3), gaussian(8, seed + 4), gaussian(8, seed + 5)];
      const tag = `width ${width} rows ${r0}..${r1}`;
      // (out − Σ)·0.75: the scaling adds one rounding.
      out.push(scenario(`corr ${tag}`, 2 * width + 2, [data[0], data[1], data[2], data[3], data[4]], [2], (k, [a, x, o, t1, t2]) => {
        k.corr(a, ao, 37, x, 0, 10, r0, r1, t1, t2, o, 0, 1, 0.75, width);
        return o;
      }));
      out.push(scenario(`colsT ${tag}`, r1 - r0 + 1, [data[0], data[1], data[2], data[3], data[5]], [], (k, [a, x, vv, t1, t2]) => {
        k.colsT(a, ao, 37, x, 0, 10, r0, r1, vv, t1, t2, width);
        return Float64Array.of(...t1, ...t2);
      }));
    }
  }
  return out;
}

test('each wasm-fma kernel agrees with its JS twin within (terms + 2)·eps·Σ|products|, and fuses somewhere', () => {
  const fma = withKernels('wasm-fma', () => denseKernels());
  let differ = 0;
  for (const s of kernelScenarios()) {
    const got = s.run(fma, false);
    const want = s.run(jsKernels, false);
    const mag = s.run(jsKernels, true);
    for (let i = 0; i < got.length; i++) {
      const bound = (s.terms + 2) * EPS * Math.abs(mag[i]);
      assert.ok(Math.abs(got[i] - want[i]) <= bound, `${s.what} [${i}]: fma ${got[i]} vs js ${want[i]} (bound ${bound})`);
      if (!Object.is(got[i], want[i])) differ++;
    }
  }
  // A build that silently fell back to the exact kernels would agree everywhere.
  assert.ok(differ > 0, 'the fma build gave the exact twins’ bits everywhere');
});

test('MoRA spectra of LLaMA-2-7B-shaped modules: wasm-fma within 1e-11·σ_max of the exact path, both types', () => {
  const modules: [number, number][] = [[4096, 4096], [4096, 11008], [11008, 4096]];
  for (const type of [1, 6] as MoraType[]) {
    for (const [l, [inF, outF]] of modules.entries()) {
      const r = moraRank(inF, outF, 8, type);
      const rnd = mulberry(16 * l + type);
      const M = Float32Array.from({ length: r * r }, () => 0.02 * randn(rnd));
      const exact = withKernels('wasm', () => moraSingularValues(M, r, inF, outF, type));
      const fused = withKernels('wasm-fma', () => moraSingularValues(M, r, inF, outF, type));
      assert.equal(fused.sigma.length, exact.sigma.length);
      assert.equal(fused.method, exact.method);
      const smax = exact.sigma[0];
      for (let i = 0; i < exact.sigma.length; i++) {
        assert.ok(Math.abs(fused.sigma[i] - exact.sigma[i]) <= 1e-11 * smax, `type ${type} ${inF}×${outF} σ${i}: ${fused.sigma[i]} vs ${exact.sigma[i]}`);
      }
    }
  }
});
