// The fused MoRA-6 BF16 slab kernel (mergeSlabWasm.ts) must give the bytes and errors of the JS row path, for every
// row kind it takes or hands back: plain bands, odd half-widths (a scalar last pair), r̂ not a multiple of 8, bands
// that wrap (padding), outputs tiled past the produced width, row lengths with a scalar scan tail, -0 and Inf/NaN in
// the base, band sums that overflow BF16, and weights 1, 0.7 and -1.5 (whose ΔW zeros are -0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultAdapterConfig, moraRank, type AdapterModule } from '../../src/adapters';
import { LinearRows } from '../../src/adapters/mergeRows';
import { mergeTensorBytes } from '../../src/adapters/mergeTensor';
import { planMerge, type BaseView, type MergeSource } from '../../src/adapters/mergePlan';
import { fusedScratchBytes, mora6ScratchBytes, SlabMemory } from '../../src/adapters/mergeSlabWasm';
import { setMergeWasm } from '../../src/adapters/mergeWasm';
import { float32ToBytes } from '../../src/safetensors';
import { Rng } from '../../src/util/rng';
import { message } from './cliTestUtil';

function mora6Source(rng: Rng, outF: number, inF: number, weight: number): MergeSource {
  const r = 2;
  const cfg = defaultAdapterConfig({ r, lora_alpha: 3, target_modules: ['proj'], use_mora: true, mora_type: 6 });
  const rHat = moraRank(inF, outF, r, 6);
  const M = rng.normalArray(rHat * rHat);
  const module: AdapterModule = { path: 'model.layers.0.mlp.proj', A: M, aShape: [rHat, rHat], B: M, bShape: [rHat, rHat] };
  return { adapter: { dir: 'mora6', config: cfg, modules: new Map([[module.path, module]]), saved: new Map() }, weight };
}

test('fused MoRA-6 slab kernel = JS row path: bytes, -0, Inf/NaN, overflow, wraps, odd r̂/2, weights', () => {
  const rng = new Rng(91);
  const name = 'model.layers.0.mlp.proj.weight';
  // [out, in]: r̂ 18 (r̂/2 odd, wraps, tiled, scan tail of 6), r̂ 16 (no wrap), r̂ 22 (odd, wraps), r̂ 20 (5 pairs).
  for (const [outF, inF] of [[100, 70], [70, 64], [200, 72], [130, 96]]) {
    const view: BaseView = {
      shards: ['s'], names: () => [name], shardOf: () => 's',
      info: () => ({ dtype: 'BF16', shape: [outF, inF], dataOffsets: [0, outF * inF * 2] }),
    };
    for (const weight of [1, 0.7, -1.5]) {
      const sources = [mora6Source(rng, outF, inF, weight)];
      const plan = planMerge(view, sources, { method: 'linear', density: 1 });
      const t = plan.tensors[0];
      const rHat = moraRank(inF, outF, 2, 6);
      assert.equal(fusedScratchBytes([t], sources), mora6ScratchBytes(rHat, inF));
      const W = rng.normalArray(outF * inF);
      const cases: [string, (w: Float32Array) => void][] = [
        ['clean', () => undefined],
        ['-0', (w) => { for (let i = 5; i < w.length; i += 211) w[i] = -0; }], // in some rows, in and out of bands
        ['Inf, NaN', (w) => { [w[61 * inF + 3], w[62 * inF]] = [Infinity, NaN]; }],
        // 3.3e38 + a band value ≥ ~1e37 rounds past BF16's largest finite value; placed in row 40's band.
        ['overflow', (w) => { for (let j = 0; j < inF; j++) w[40 * inF + j] = 3.38e38; }],
      ];
      for (const [kind, edit] of cases) {
        const w = W.slice();
        edit(w);
        const base = float32ToBytes(w, 'BF16');
        const what = `[${outF}, ${inF}] w=${weight} ${kind}`;
        let want = '';
        const wasWasm = setMergeWasm(false); // the reference: the whole-tensor JS loops, no kernel at all
        const wantMsg = message(() => (want = Buffer.from(mergeTensorBytes(plan, t, sources, base.slice(), 'BF16', what)!).toString('hex')));
        setMergeWasm(true);
        try {
          if (kind === 'clean') assert.equal(wantMsg, 'no error', what);
          for (const rows of [1, 7, outF]) {
            const memory = SlabMemory.create(rows * inF * 2, 2, fusedScratchBytes([t], sources))!;
            const merge = LinearRows.create(plan, t, sources, 'BF16', what)!;
            let kernelRows = 0;
            const fused = memory.mora6.bind(memory);
            memory.mora6 = (...args) => {
              const done = fused(...args);
              kernelRows += done;
              return done;
            };
            const parts: string[] = [];
            const msg = message(() => {
              for (let o0 = 0; o0 < outF; o0 += rows) {
                const part = base.subarray(o0 * inF * 2, Math.min(outF, o0 + rows) * inF * 2);
                const slot = memory.acquire()!.subarray(0, part.length);
                slot.set(part);
                const out = merge.merge(slot, o0, undefined, memory);
                assert.equal(out, slot, 'merged in place');
                parts.push(Buffer.from(out).toString('hex'));
                memory.release(slot);
              }
            });
            assert.equal(msg, wantMsg, `${what}, ${rows} rows`);
            if (wantMsg === 'no error') assert.equal(parts.join(''), want, `${what}, ${rows} rows`);
            // The kernel did the work: every row of a clean base (wrapped bands included), not those with a -0.
            if (kind === 'clean') assert.equal(kernelRows, outF, `${what}, ${rows} rows`);
            if (kind === '-0') assert.ok(kernelRows > 0 && kernelRows < outF, `${what}: ${kernelRows}`);
          }
        } finally {
          setMergeWasm(wasWasm);
        }
      }
    }
  }
});

test('SlabMemory: fixed slots that are never detached, refused bytes and tables that do not fit', () => {
  const was = setMergeWasm(true);
  try {
    const memory = SlabMemory.create(1000, 2, 4096)!;
    const a = memory.acquire()!;
    const b = memory.acquire()!;
    assert.equal(memory.acquire(), undefined, 'two slots only');
    assert.equal(a.length, 1000);
    assert.equal(a.byteOffset % 64, 0);
    assert.ok(b.byteOffset >= a.byteOffset + 1000);
    assert.equal(memory.release(new Uint8Array(1000)), false, 'not a slot');
    assert.equal(memory.release(a.subarray(0, 10)), true);
    assert.equal(memory.acquire()!.byteOffset, a.byteOffset);
    assert.equal(a.buffer.byteLength > 0, true, 'still attached');
    assert.equal(SlabMemory.create(64 << 20, 8, 4096), undefined, 'no 512 MB of slots: plain buffers instead');
    setMergeWasm(false);
    assert.equal(SlabMemory.create(1000, 2, 4096), undefined, 'no memory without the kernels');
  } finally {
    setMergeWasm(was);
  }
});
