// Cross-check against a line-by-line transliteration of the reference get_delta_weight (kongds/MoRA, peft-mora
// src/peft/tuners/lora/layer.py), which builds ΔW with loops and block assignments instead of our direct formula.
// Only shapes the reference itself handles are used: pad ≤ in, and for type 6 at least two chunks (with one chunk
// its `i += 1` after an empty loop raises NameError).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moraDeltaW, moraRank, type MoraType } from '../../src/adapters';
import { Rng } from '../../src/util/rng';

/** Reference get_delta_weight, float64, returns [out, in] row-major. */
function referenceDeltaW(aw: Float32Array, r: number, inF: number, outF: number, type: MoraType): Float64Array {
  const pad = inF % r !== 0 ? r - (inF % r) : 0;
  const repeatTime = Math.ceil(outF / r);
  let w: Float64Array;
  let rows: number;
  if (type === 1) {
    // w = zeros(r, in_f); for i in range(in_f + pad_size): w[:, i % in_f] += aw[:, i % r]
    rows = r;
    w = new Float64Array(r * inF);
    for (let i = 0; i < inF + pad; i++) for (let a = 0; a < r; a++) w[a * inF + (i % inF)] += aw[a * r + (i % r)];
    // w = torch.cat([w]*repeat_time, dim=0)[:out_f]
    const outW = new Float64Array(outF * inF);
    for (let o = 0; o < Math.min(outF, repeatTime * rows); o++) for (let k = 0; k < inF; k++) outW[o * inF + k] = w[(o % rows) * inF + k];
    return outW;
  }
  // type 6
  rows = inF + pad;
  w = new Float64Array(rows * inF);
  const rb1 = inF % r === 0 ? inF / r : Math.floor(inF / r) + 1;
  const rb2 = outF % r === 0 ? outF / r : Math.floor(outF / r) + 1;
  const h = r / 2;
  // inv_freq = 1.0 / (10000 ** (torch.arange(0, r, 2).float() / r)); emb = cat(freqs, freqs)
  const angle = (i: number, j: number): number => i * (1 / Math.pow(10000, (2 * (j % h)) / r));
  // aw2 = torch.cat((aw[:, r//2:], -aw[:, :r//2]), dim=-1); block = aw2*sin[:, i] + aw*cos[:, i]
  const block = (i: number, a: number, j: number): number => {
    const aw2 = j < h ? aw[a * r + j + h] : -aw[a * r + j - h];
    return aw2 * Math.sin(angle(i, j)) + aw[a * r + j] * Math.cos(angle(i, j));
  };
  let i = 0;
  for (i = 0; i < rb1 - 1; i++) {
    for (let a = 0; a < r; a++) for (let j = 0; j < r; j++) w[(i * r + a) * inF + i * r + j] = block(i, a, j);
  }
  // w[i*r:, i*r:] = block[:, :r-pad_size]; w[i*r:, :pad_size] = block[:, r-pad_size:]
  for (let a = 0; a < r; a++) {
    for (let j = 0; j < r - pad; j++) w[(i * r + a) * inF + i * r + j] = block(i, a, j);
    for (let j = 0; j < pad; j++) w[(i * r + a) * inF + j] = block(i, a, r - pad + j);
  }
  // if in_f < out_f: w = cat([w]*repeat_time)[:out_f] else w = w[:out_f]
  const outW = new Float64Array(outF * inF);
  const total = inF < outF ? rb2 * rows : rows;
  for (let o = 0; o < Math.min(outF, total); o++) for (let k = 0; k < inF; k++) outW[o * inF + k] = w[(o % rows) * inF + k];
  return outW;
}

test('moraDeltaW matches the reference get_delta_weight loops (types 1 and 6)', () => {
  const rng = new Rng(21);
  // [in, out, r̂] with pad ≤ in and ≥ 2 chunks; includes out > in (tiling), out < in (truncation), in % r̂ ≠ 0.
  const shapes: [number, number, number][] = [
    [4, 4, 2], [5, 3, 2], [3, 8, 2], [10, 7, 4], [7, 19, 4], [13, 13, 6], [20, 9, 6], [9, 40, 4], [30, 31, 8], [14, 50, 4],
  ];
  for (const [inF, outF, rHat] of shapes) {
    for (const type of [1, 6] as MoraType[]) {
      const M = Float32Array.from({ length: rHat * rHat }, () => rng.normal());
      const ours = moraDeltaW(M, rHat, inF, outF, type);
      const ref = referenceDeltaW(M, rHat, inF, outF, type);
      for (let k = 0; k < ref.length; k++) {
        assert.ok(Math.abs(ours[k] - ref[k]) < 1e-5, `type ${type} in=${inF} out=${outF} r̂=${rHat} at ${k}: ${ours[k]} vs ${ref[k]}`);
      }
    }
  }
});

test('reference shapes at a real r: r̂ from moraRank for a 64→48 layer', () => {
  const rng = new Rng(5);
  for (const type of [1, 6] as MoraType[]) {
    const rHat = moraRank(64, 48, 2, type); // sqrt(224) = 14.97 -> 15 (type 1), 14 (type 6)
    assert.equal(rHat, type === 1 ? 15 : 14);
    const M = Float32Array.from({ length: rHat * rHat }, () => rng.normal());
    const ours = moraDeltaW(M, rHat, 64, 48, type);
    const ref = referenceDeltaW(M, rHat, 64, 48, type);
    let maxErr = 0;
    for (let k = 0; k < ref.length; k++) maxErr = Math.max(maxErr, Math.abs(ours[k] - ref[k]));
    assert.ok(maxErr < 1e-5, `type ${type}: max error ${maxErr}`);
  }
});
