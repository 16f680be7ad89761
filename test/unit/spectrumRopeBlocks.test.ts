// The MoRA spectrum's bookkeeping helpers against their plain definitions, bit for bit: the arithmetic row weights,
// the merge of sorted σ lists, the fused rotate-and-scatter of a Gram block, the lower-triangle Gram and the CSC
// product of the type 1 column factor. moraSingularValues' own values are checked against dense SVDs in
// spectrumStructured.test.ts; these pin the pieces whose whole point is to give the same bits faster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gramSigma, rotateScatter, weightedGram } from '../../src/spectrum/gramBlock';
import { mulberry, randn } from '../../src/spectrum/random';
import { ChunkWeights, mergeDescending } from '../../src/spectrum/ropeBlocks';
import { scaledTimesSparse, shareColumnFactor } from '../../src/spectrum/shareKernel';

function random(n: number, seed: number): Float64Array {
  const rnd = mulberry(seed);
  return Float64Array.from({ length: n }, () => randn(rnd));
}

function assertBits(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Object.is(got[i], want[i]), `${what}: [${i}] ${got[i]} vs ${want[i]}`);
}

test('ChunkWeights: every row of every chunk has weight ⌊out/L⌋ + (p < out mod L)', () => {
  for (const [r, chunks, outF] of [[8, 4, 32], [8, 4, 45], [8, 4, 20], [6, 7, 9], [10, 4, 100], [348, 12, 11008], [348, 32, 4096]]) {
    const L = chunks * r;
    const wts = new ChunkWeights(r, outF, L);
    for (let c = 0; c < chunks; c++) {
      const want = Array.from({ length: r }, (_, a) => Math.floor(outF / L) + (c * r + a < outF % L ? 1 : 0));
      assertBits(wts.rows(c), want, `r=${r} out=${outF} chunk ${c}`);
      const constant = want.every((x) => x === want[0]) ? want[0] : -1;
      assert.equal(wts.constant(c), constant);
      assert.equal(wts.positive(c), want.filter((x) => x > 0).length);
    }
  }
});

test('mergeDescending equals concatenating the copies and sort().reverse(), fallbacks included', () => {
  const a = Float64Array.from(random(50, 1).map(Math.abs)).sort().reverse();
  const b = Float64Array.from(random(30, 2).map(Math.abs)).sort().reverse();
  const tied = Float64Array.of(3, 2, 2, 0, 0);
  const cases: [Float64Array, number][][] = [
    [[a, 16]],
    [[a, 3], [b, 1], [tied, 2]],
    [[a, 1], [a, 2]],
    [],
    [[Float64Array.of(1, 5, 2), 2], [b, 1]], // not descending: sorted whole
    [[Float64Array.of(2, NaN, 1), 1], [a, 1]],
    [[Float64Array.of(1, -0), 1], [Float64Array.of(0), 2]],
  ];
  for (const parts of cases) {
    const flat = parts.flatMap(([s, n]) => Array.from({ length: n }, () => Array.from(s))).flat();
    const want = Float64Array.from(flat).sort().reverse();
    assertBits(mergeDescending(parts.map(([s, count]) => ({ s, count }))), want, `parts ${parts.map(([s, n]) => `${s.length}×${n}`)}`);
  }
});

/** The unfused reference: G ← R_cᵀ G R_c in place, then H[idx[a], idx[b]] += f·G[a, b] for every a, b. */
function rotateThenScatter(H: Float64Array, nc: number, g: Float64Array, r: number, c: number, cos: Float32Array, sin: Float32Array, idx: Int32Array, f: number): void {
  const h = r / 2;
  for (let a = 0; a < r; a++) {
    for (let j = 0; j < h; j++) {
      const [co, si, x, y] = [cos[c * h + j], sin[c * h + j], g[a * r + j], g[a * r + j + h]];
      g[a * r + j] = x * co + y * si;
      g[a * r + j + h] = y * co - x * si;
    }
  }
  for (let j = 0; j < h; j++) {
    for (let b = 0; b < r; b++) {
      const [co, si, x, y] = [cos[c * h + j], sin[c * h + j], g[j * r + b], g[(j + h) * r + b]];
      g[j * r + b] = x * co + y * si;
      g[(j + h) * r + b] = y * co - x * si;
    }
  }
  for (let a = 0; a < r; a++) for (let b = 0; b < r; b++) H[idx[a] * nc + idx[b]] += f * g[a * r + b];
}

test('rotateScatter adds the same lower triangle as rotating in place and scattering every entry', () => {
  // [r, inF, chunk]: columns (c·r + l) mod in in first-seen order, as coupledBlock numbers them, after column 0 (as if
  // chunk 0 came first), so a wrapped chunk's runs fall on both sides of H's diagonal. in < r repeats indices within
  // the chunk (the unfused fallback); the others wrap once or not at all.
  for (const [r, inF, c] of [[8, 30, 3], [8, 30, 0], [10, 36, 3], [8, 3, 0], [8, 6, 0], [16, 50, 3]]) {
    const h = r / 2;
    const cos = Float32Array.from(random(4 * h, 3 + r), Math.cos);
    const sin = Float32Array.from(random(4 * h, 4 + r), Math.sin);
    const idx = new Int32Array(r);
    const seen = new Map<number, number>([[0, 0]]);
    for (let l = 0; l < r; l++) {
      const col = (c * r + l) % inF;
      if (!seen.has(col)) seen.set(col, seen.size);
      idx[l] = seen.get(col)!;
    }
    const nc = seen.size + 1;
    const base = random(r * r, 5);
    const gram = new Float64Array(r * r);
    for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) gram[i * r + j] = base[Math.max(i, j) * r + Math.min(i, j)];
    const start = random(nc * nc, 6);
    const want = start.slice();
    rotateThenScatter(want, nc, gram.slice(), r, c, cos, sin, idx, 3);
    const got = start.slice();
    rotateScatter(got, nc, gram.slice(), r, h, c, cos, sin, idx, 3);
    for (let i = 0; i < nc; i++) {
      for (let j = 0; j < nc; j++) {
        const k = i * nc + j;
        assert.ok(Object.is(got[k], j <= i ? want[k] : start[k]), `r=${r} in=${inF} c=${c}: H[${i}, ${j}]`);
      }
    }
  }
});

test('weightedGram lowerOnly: the same lower triangle, and gramSigma gives the same bits from it', () => {
  const [r, k] = [40, 13];
  const M = random(r * r, 7);
  const w = Float64Array.from(random(k, 8), (x) => 1 + Math.abs(x));
  const full = weightedGram(M, r, w, k);
  const lower = weightedGram(M, r, w, k, true);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) assert.ok(Object.is(lower[i * r + j], j <= i ? full[i * r + j] : 0), `[${i}, ${j}]`);
  }
  assertBits(gramSigma(lower, r, k).sigma, gramSigma(full, r, k).sigma, 'σ');
});

test('scaledTimesSparse equals the row-by-row scatter of diag(√w)·M·F', () => {
  // The LLaMA gate_proj shape for type 1: r̂ = 348, in = 4096 padded to 4176, so 80 columns read two rows.
  const [r, inF] = [348, 4096];
  const L = Math.ceil(inF / r) * r;
  const single = new Float64Array(r);
  const explicit: number[][] = [];
  for (let c = 0; c < inF; c++) {
    if (c + inF >= L) single[c % r]++;
    else explicit.push([c % r, (c + inF) % r]);
  }
  const f = shareColumnFactor(r, single, explicit)!;
  const M = Float32Array.from(random(r * r, 9));
  M.fill(0, 5 * r, 5 * r + 40); // zero terms are skipped: keep some
  const rowsKept = Array.from({ length: r - 3 }, (_, i) => i + 2);
  const w = Float64Array.from({ length: r }, (_, j) => 2 + (j % 3));
  const want = new Float64Array(rowsKept.length * r);
  rowsKept.forEach((a, i) => {
    for (let j = 0; j < r; j++) {
      const mj = Math.sqrt(w[a]) * M[a * r + j];
      if (mj === 0) continue;
      f.cols[j].forEach((col, t) => (want[i * r + col] += mj * f.vals[j][t]));
    }
  });
  assertBits(scaledTimesSparse(M, r, rowsKept, w, f), want, 'Y');
});
