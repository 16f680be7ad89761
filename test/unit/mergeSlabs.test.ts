// Slab-wise merges (copy + patch): merging a tensor's rows a range at a time, in order, must give the whole-tensor
// row kernels' bytes and, for a bad value, the same error naming the same whole-tensor flat index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinearRows, linearRowsApply } from '../../src/adapters/mergeRows';
import { convertBytes, mergeTensorBytes } from '../../src/adapters/mergeTensor';
import { planMerge, type BaseView } from '../../src/adapters/mergePlan';
import { setMergeWasm } from '../../src/adapters/mergeWasm';
import { float32ToBytes } from '../../src/safetensors';
import { Rng } from '../../src/util/rng';
import { projSource } from './mergeTestUtil';
import { message } from './cliTestUtil';

test('LinearRows over row ranges equals mergeTensorBytes: LoRA, MoRA 1/6, weights, several adapters, bad values', () => {
  const rng = new Rng(77);
  const [outF, inF] = [37, 40]; // MoRA-6 bands that wrap; LoRA quads cut by range boundaries
  const shape = [outF, inF];
  const name = 'model.layers.0.mlp.proj.weight';

  const combos: [('lora' | 'mora1' | 'mora6')[], number[]][] = [
    [['lora'], [1]], [['mora1'], [1]], [['mora6'], [1]], [['mora6'], [-0.5]], [['lora', 'mora6'], [0.7, -1.3]],
  ];
  for (const wasm of [true, false]) {
    const was = setMergeWasm(wasm);
    try {
      for (const dtype of ['F32', 'F16', 'BF16'] as const) {
        const W = rng.normalArray(outF * inF);
        for (let i = 0; i < W.length; i += 13) W[i] = -0; // passed through or added to, in and out of bands
        const size = dtype === 'F32' ? 4 : 2;
        const view: BaseView = {
          shards: ['s'], names: () => [name], shardOf: () => 's',
          info: () => ({ dtype, shape, dataOffsets: [0, outF * inF * size] }),
        };
        for (const [kinds, weights] of combos) {
          const sources = kinds.map((k, i) => projSource(rng, k, weights[i], outF, inF));
          const plan = planMerge(view, sources, { method: 'linear', density: 1 });
          const t = plan.tensors[0];
          assert.ok(linearRowsApply(plan, t, sources));
          // A clean base, then one with Inf at a late element and NaN after it: the first one must be named.
          for (const bad of [undefined, 29 * inF + 3]) {
            const w = W.slice();
            if (bad !== undefined) [w[bad], w[bad + inF + 1]] = [Infinity, NaN];
            const base = float32ToBytes(w, dtype);
            const what = `${wasm} ${dtype} ${kinds.join('+')} ${weights.join(',')} ${bad}`;
            let want = '';
            const wantMsg = message(() => (want = Buffer.from(mergeTensorBytes(plan, t, sources, base.slice(), dtype, what)!).toString('hex')));
            if (bad !== undefined) assert.match(wantMsg, new RegExp(`flat index ${bad}\\b`), what);
            for (const rows of [1, 2, 5, 16, outF]) {
              const merge = LinearRows.create(plan, t, sources, dtype, what)!;
              const parts: string[] = [];
              const msg = message(() => {
                for (let o0 = 0; o0 < outF; o0 += rows) {
                  const part = base.slice(o0 * inF * size, Math.min(outF, o0 + rows) * inF * size);
                  parts.push(Buffer.from(merge.merge(part, o0)).toString('hex'));
                }
              });
              assert.equal(msg, wantMsg, `${what}, ${rows} rows`);
              if (bad === undefined) assert.equal(parts.join(''), want, `${what}, ${rows} rows`);
            }
          }
        }
      }
    } finally {
      setMergeWasm(was);
    }
  }
});

test('slab-wise LinearRows interleaved with another tensor, merge or conversion (two merges at once): the same bytes', () => {
  const rng = new Rng(78);
  const [outF, inF] = [37, 40];
  const name = 'model.layers.0.mlp.proj.weight';
  const view: BaseView = {
    shards: ['s'], names: () => [name], shardOf: () => 's',
    info: () => ({ dtype: 'BF16', shape: [outF, inF], dataOffsets: [0, outF * inF * 2] }),
  };
  const was = setMergeWasm(true);
  try {
    // Two merges, each a slab of 5 rows at a time, taking turns; a conversion (which empties the arena) between them.
    const jobs = (['lora', 'mora6'] as const).map((k) => {
      const sources = [projSource(rng, k, 1, outF, inF)];
      const plan = planMerge(view, sources, { method: 'linear', density: 1 });
      const base = float32ToBytes(rng.normalArray(outF * inF), 'BF16');
      const want = Buffer.from(mergeTensorBytes(plan, plan.tensors[0], sources, base.slice(), 'F32', k)!).toString('hex');
      return { base, want, parts: [] as string[], merge: LinearRows.create(plan, plan.tensors[0], sources, 'F32', k)! };
    });
    const other = float32ToBytes(rng.normalArray(3000), 'F32');
    for (let o0 = 0; o0 < outF; o0 += 5) {
      for (const j of jobs) {
        const part = j.base.slice(o0 * inF * 2, Math.min(outF, o0 + 5) * inF * 2);
        j.parts.push(Buffer.from(j.merge.merge(part, o0)).toString('hex'));
        convertBytes(other, 'F32', 'BF16', 'other');
      }
    }
    for (const j of jobs) assert.equal(j.parts.join(''), j.want);
  } finally {
    setMergeWasm(was);
  }
});
