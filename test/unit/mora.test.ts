import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdapterError, moraApply, moraChunks, moraCompress, moraDeltaW, moraExpand, moraExpandAdjoint, moraRank, type MoraType,
} from '../../src/adapters';
import { Rng } from '../../src/util/rng';

const f32 = (a: number[]): Float32Array => Float32Array.from(a);
const M12 = f32([1, 2, 3, 4]); // [[1, 2], [3, 4]]
const c = Math.cos(1);
const s = Math.sin(1);

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** ΔW [out, in] x x [n, in] -> [n, out], in float64. */
function matVec(dW: Float32Array, outF: number, inF: number, x: Float32Array, n: number): Float64Array {
  const y = new Float64Array(n * outF);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let k = 0; k < inF; k++) acc += dW[o * inF + k] * x[i * inF + k];
      y[i * outF + o] = acc;
    }
  }
  return y;
}

test('moraRank: floor(sqrt((in+out)·r) + 0.5), type 6 rounded down to even', () => {
  assert.equal(moraRank(4096, 4096, 8, 1), 256); // sqrt(65536) = 256: the paper's r=8 → r̂=256 for 4096×4096
  assert.equal(moraRank(11008, 4096, 8, 1), 348); // sqrt(120832) = 347.61 -> 348 (rounds, not floors)
  assert.equal(moraRank(11008, 4096, 8, 6), 348);
  assert.equal(moraRank(16, 15, 1, 1), 6); // sqrt(31) = 5.568 -> 6
  assert.equal(moraRank(16, 15, 1, 6), 6);
  assert.equal(moraRank(15, 15, 1, 1), 5); // sqrt(30) = 5.477 -> 5
  assert.equal(moraRank(15, 15, 1, 6), 4); // 5 -> 4 (r̂ // 2 * 2, never up to 6)
  assert.equal(moraRank(4, 4, 1, 1), 3); // sqrt(8) = 2.83 -> 3
  assert.equal(moraRank(4, 4, 1, 6), 2);
  assert.equal(moraRank(3, 3, 1, 1), 2); // sqrt(6) = 2.449 -> 2
  assert.equal(moraRank(1, 1, 1, 1), 1);
  assert.throws(() => moraRank(1, 1, 1, 6), (e: unknown) => e instanceof AdapterError && e.kind === 'RankMismatch');
  assert.equal(moraChunks(10, 4), 3);
});

test('type 1 by hand: in=4, out=4, r̂=2', () => {
  // x = [1,2,3,4]: chunks [1,2] + [3,4] = [4,6]; M·[4,6] = [1·4+2·6, 3·4+4·6] = [16,36]; tiled to 4 outputs.
  const x = f32([1, 2, 3, 4]);
  assert.deepEqual([...moraApply(M12, 2, 4, 4, 1, x, 1)], [16, 36, 16, 36]);
  // ΔW column i is M's column i % 2; rows repeat every r̂ = 2.
  assert.deepEqual([...moraDeltaW(M12, 2, 4, 4, 1)], [1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4]);
});

test('type 1 by hand: padding by repeating the first columns, truncated tiling (in=3, out=5, r̂=2)', () => {
  // padded x = [1,2,3,1] (x[:1] appended): chunks [1,2] + [3,1] = [4,3]; M·[4,3] = [10, 24];
  // tiled [10,24,10,24,10,24] truncated to 5.
  assert.deepEqual([...moraApply(M12, 2, 3, 5, 1, f32([1, 2, 3]), 1)], [10, 24, 10, 24, 10]);
  // Padded position 3 feeds column 0 through M's column 1: column 0 = M[:,0] + M[:,1] = [3,7].
  const dW = moraDeltaW(M12, 2, 3, 5, 1);
  assert.deepEqual([...dW], [3, 2, 1, 7, 4, 3, 3, 2, 1, 7, 4, 3, 3, 2, 1]);
  // Two rows at once: the second row is x = [0,0,1] -> padded [0,0,1,0] -> [1,0] -> [1,3] -> [1,3,1,3,1].
  assert.deepEqual([...moraApply(M12, 2, 3, 5, 1, f32([1, 2, 3, 0, 0, 1]), 2)], [10, 24, 10, 24, 10, 1, 3, 1, 3, 1]);
});

test('type 1 with in < r̂ pads cyclically (x[p % in])', () => {
  // in=2, r̂=3, M = I: padded [5,7,5] -> [5,7,5] -> out [5,7,5,5] (tiled to 4).
  const I3 = f32([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.deepEqual([...moraApply(I3, 3, 2, 4, 1, f32([5, 7]), 1)], [5, 7, 5, 5]);
  assert.deepEqual([...moraDeltaW(I3, 3, 2, 4, 1)], [1, 0, 0, 1, 1, 0, 1, 0]);
});

test('type 6 by hand: in=4, out=4, r̂=2 (chunk 1 rotated by angle 1)', () => {
  // chunk 0 is not rotated: M·[1,2] = [5, 11].
  // chunk 1 = [3,4] rotated at position 1 with θ_0 = 1: u = [3c − 4s, 4c + 3s];
  // M·u = [u0 + 2u1, 3u0 + 4u1] = [11c + 2s, 25c] = [7.6262673, 13.5075576].
  const y = moraApply(M12, 2, 4, 4, 6, f32([1, 2, 3, 4]), 1);
  assertClose(y, [5, 11, 7.62626733416533, 13.507557646703495], 2e-6);
  // ΔW is block diagonal: block 0 = M, block 1 = M·R(1) = [[c + 2s, 2c − s], [3c + 4s, 4c − 3s]].
  const dW = moraDeltaW(M12, 2, 4, 4, 6);
  assertClose(dW, [1, 2, 0, 0, 3, 4, 0, 0, 0, 0, c + 2 * s, 2 * c - s, 0, 0, 3 * c + 4 * s, 4 * c - 3 * s], 1e-6);
  assertClose([c + 2 * s, 2 * c - s, 3 * c + 4 * s, 4 * c - 3 * s], [2.2232442754839328, 0.23913362692838303, 4.986790856836006, -0.36320373095113023], 1e-12);
});

test('type 6 frequencies: θ_j = 10000^(−2j/r̂), pairs (j, j + r̂/2)', () => {
  // r̂ = 4: θ_0 = 1, θ_1 = 10000^(−1/2) = 0.01. M = I, in = out = 8, so the output is the rotated input.
  const I4 = f32([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  const e = (k: number): Float32Array => f32([0, 1, 2, 3, 4, 5, 6, 7].map((i) => (i === k ? 1 : 0)));
  // Chunk 1, j = 0 pairs with j = 2, rotated by 1·θ_0 = 1 rad.
  assertClose(moraApply(I4, 4, 8, 8, 6, e(4), 1), [0, 0, 0, 0, Math.cos(1), 0, Math.sin(1), 0], 1e-7);
  // Chunk 1, j = 1 pairs with j = 3, rotated by 1·θ_1 = 0.01 rad.
  assertClose(moraApply(I4, 4, 8, 8, 6, e(5), 1), [0, 0, 0, 0, 0, 0.9999500004166653, 0, 0.009999833334166664], 1e-7);
  // Chunk 0 is never rotated.
  assertClose(moraApply(I4, 4, 8, 8, 6, e(2), 1), [0, 0, 1, 0, 0, 0, 0, 0], 0);
});

test('type 6 by hand: padding and tiling (in=3, out=8, r̂=2) and truncation (in=5, out=3)', () => {
  // padded x = [1,2,3,1]; chunk 0 -> [5, 11]; chunk 1 = [3,1] rotated: u = [3c − s, c + 3s];
  // M·u = [5c + 5s, 13c + 9s]; the 4 produced values are tiled to 8.
  const y = moraApply(M12, 2, 3, 8, 6, f32([1, 2, 3]), 1);
  const a = 5 * c + 5 * s; // 6.9088665
  const b = 13 * c + 9 * s; // 14.5971688
  assertClose(y, [5, 11, a, b, 5, 11, a, b], 4e-6);
  // in=5: 3 chunks produce 6 values, truncated to out=3: [chunk 0 (2 values), first value of chunk 1].
  const y2 = moraApply(M12, 2, 5, 3, 6, f32([1, 2, 3, 4, 5]), 1);
  assertClose(y2, [5, 11, 11 * c + 2 * s], 4e-6);
});

test('moraApply equals ΔW·x on random inputs for odd shapes (both types)', () => {
  const rng = new Rng(7);
  // [in, out, r̂]: in≠out, in % r̂ ≠ 0, in < r̂, out < r̂·chunks, out > chunks·r̂ (tiling), out < r̂, 1-wide inputs.
  const shapes: [number, number, number][] = [
    [7, 5, 2], [5, 7, 2], [10, 3, 4], [3, 10, 4], [9, 30, 4], [13, 11, 6], [2, 9, 4], [16, 16, 4], [17, 40, 6],
    [1, 5, 2], [33, 20, 8], [6, 1, 4], [40, 7, 10], [24, 64, 12],
  ];
  const odd: [number, number, number][] = [[7, 5, 3], [10, 13, 3], [2, 9, 5], [11, 4, 7]]; // type 1 allows odd r̂
  const cases: [number, number, number, MoraType][] = [
    ...shapes.flatMap(([i, o, r]) => [[i, o, r, 1], [i, o, r, 6]] as [number, number, number, MoraType][]),
    ...odd.map(([i, o, r]) => [i, o, r, 1] as [number, number, number, MoraType]),
  ];
  for (const [inF, outF, rHat, type] of cases) {
    const M = Float32Array.from({ length: rHat * rHat }, () => rng.normal());
    const n = 3;
    const x = Float32Array.from({ length: n * inF }, () => rng.normal());
    const direct = moraApply(M, rHat, inF, outF, type, x, n);
    const viaW = matVec(moraDeltaW(M, rHat, inF, outF, type), outF, inF, x, n);
    const scale = Math.max(1, ...direct.map(Math.abs));
    assertClose(direct, viaW, 1e-5 * scale, `type ${type} in=${inF} out=${outF} r̂=${rHat}`);
  }
});

test('moraApply equals ΔW·x at a realistic size (512×384, r=8)', () => {
  const rng = new Rng(11);
  for (const type of [1, 6] as MoraType[]) {
    const inF = 512;
    const outF = 384;
    const rHat = moraRank(inF, outF, 8, type); // sqrt(7168) = 84.66 -> 85 (type 1) / 84 (type 6)
    assert.equal(rHat, type === 1 ? 85 : 84);
    const M = Float32Array.from({ length: rHat * rHat }, () => rng.normal() * 0.1);
    const x = Float32Array.from({ length: 2 * inF }, () => rng.normal());
    const direct = moraApply(M, rHat, inF, outF, type, x, 2);
    const viaW = matVec(moraDeltaW(M, rHat, inF, outF, type), outF, inF, x, 2);
    assertClose(direct, viaW, 1e-5 * Math.max(1, ...direct.map(Math.abs)), `type ${type}`);
  }
});

test('a zero-initialised M is the identity update; moraExpandAdjoint is the adjoint of moraExpand', () => {
  const zero = new Float32Array(36);
  assert.ok(moraApply(zero, 6, 13, 11, 6, Float32Array.from({ length: 13 }, (_, i) => i + 1), 1).every((v) => v === 0));
  assert.ok(moraDeltaW(zero, 6, 13, 11, 1).every((v) => v === 0));
  const rng = new Rng(3);
  for (const type of [1, 6] as MoraType[]) {
    const [n, inF, outF, rHat] = [2, 9, 23, 4];
    const produced = type === 1 ? rHat : moraChunks(inF, rHat) * rHat;
    const y = Float32Array.from({ length: n * produced }, () => rng.normal());
    const g = Float32Array.from({ length: n * outF }, () => rng.normal());
    const lhs = moraExpand(y, n, inF, outF, rHat, type).reduce((acc, v, i) => acc + v * g[i], 0);
    const rhs = moraExpandAdjoint(g, n, inF, outF, rHat, type).reduce((acc, v, i) => acc + v * y[i], 0);
    assert.ok(Math.abs(lhs - rhs) < 1e-4, `type ${type}: ${lhs} vs ${rhs}`);
    // Compressor shapes: type 1 -> [n, r̂], type 6 -> [n · chunks, r̂].
    assert.equal(moraCompress(new Float32Array(n * inF), n, inF, rHat, type).length, type === 1 ? n * rHat : n * 3 * rHat);
  }
});

test('bad operator inputs are named errors', () => {
  const is = (kind: string) => (e: unknown) => e instanceof AdapterError && e.kind === kind;
  assert.throws(() => moraApply(f32([1, 2, 3, 4, 5, 6, 7, 8, 9]), 3, 4, 4, 6, new Float32Array(4), 1), is('RankMismatch'));
  assert.throws(() => moraDeltaW(M12, 3, 4, 4, 1), is('ShapeMismatch'));
  assert.throws(() => moraApply(M12, 2, 4, 4, 1, new Float32Array(5), 1), is('ShapeMismatch'));
  assert.throws(() => moraDeltaW(M12, 2, 4, 4, 2 as MoraType), is('ConfigInvalid'));
});
