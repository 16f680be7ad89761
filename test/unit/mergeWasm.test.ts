// The merge's WASM SIMD kernels against the JS loops they replace: bit-identical results and the same errors.
// The JS loops are the reference (they are checked against whole-matrix arithmetic in mergeTensor.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { mergeAdapters, type MergeOptions } from '../../src/adapters/merge';
import { RowCodec } from '../../src/adapters/mergeCodec';
import { LoraRows, Mora6Rows } from '../../src/adapters/mergeKernels';
import { scanSpecials, WasmLoraRows, WasmMora6Rows } from '../../src/adapters/mergeWasmRows';
import { Rng } from '../../src/util/rng';
import { hashDir, linearAndTiesCases, requireMergeWasm, tempDir, TINY_LLAMA_TARGETS, tinyLlamaBase, tinyLlamaModules, withWasm, writeTestAdapter } from './mergeTestUtil';

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];
const wasm = requireMergeWasm();

// f32 ΔW values: signed zeros, subnormals, ordinary values, sums that overflow BF16, NaN and ±Inf.
const deltas = [
  0, -0, f32(0x00000001), f32(0x80000001), f32(0x007fffff), 1e-40, 1, -1, 0.3, -2.5e-3, 1e30, 3.3e38, -3.3e38,
  f32(0x7f7f7fff), f32(0x7f7f8000), NaN, Infinity, -Infinity,
];

test('bf16 add/round kernel: all 65 536 base patterns × edge-case deltas, same bytes and same bad groups as JS', () => {
  const n = 65536;
  wasm.arena.reset();
  const pAcc = wasm.arena.alloc(n * 4);
  const pIo = wasm.arena.alloc(n * 2);
  const sU = new Uint32Array(1);
  const sF = new Float32Array(sU.buffer);
  for (const d of deltas) {
    // JS reference per element: the fused loop of RowCodec (acc + base in f32, |bits| ≥ 0x7f7f8000 is bad, RNE).
    const want = new Uint16Array(n);
    const bad = new Uint8Array(n);
    for (let h = 0; h < n; h++) {
      sU[0] = h << 16;
      sF[0] = d + sF[0];
      const b = sU[0];
      if ((b & 0x7fffffff) >= 0x7f7f8000) bad[h] = 1;
      else want[h] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
    wasm.f32(pAcc, n).fill(d);
    const io = wasm.u16(pIo, n);
    for (let h = 0; h < n; h++) io[h] = h;
    // The kernel stops before a bad group; restart after it until the end, checking every group on the way.
    for (let at = 0; at < n;) {
      const r = wasm.k.bf16AddRound(pAcc + 4 * at, pIo + 2 * at, n - at);
      const stop = r < 0 ? n : at + r;
      for (let g = at; g < stop; g += 8) assert.ok(!bad.subarray(g, g + 8).includes(1), `delta ${d}: group ${g} has a bad value`);
      if (stop < n) assert.ok(bad.subarray(stop, stop + 8).includes(1), `delta ${d}: group ${stop} flagged but clean`);
      for (let h = at; h < stop; h++) assert.equal(wasm.u16(pIo, n)[h], want[h], `delta ${d}, base 0x${h.toString(16)}`);
      at = stop + 8;
    }
  }
});

test('RowCodec.finish with and without WASM: same BF16 bytes for awkward lengths, same error for a bad element', () => {
  const rng = new Rng(5);
  for (const width of [1, 7, 8, 31, 32, 33, 77, 1000]) {
    const base = new Uint16Array(width * 3);
    for (let i = 0; i < base.length; i++) base[i] = (rng.next() * 65536) & 0x7f7f; // finite, any sign of exponent
    const acc = Float32Array.from(rng.normalArray(width * 3), (v, i) => (i % 5 === 0 ? -0 : v * 10 ** ((i % 9) - 4)));
    const run = (w: typeof wasm | undefined, bad?: number) => {
      w?.arena.reset();
      const raw = new Uint8Array(base.slice().buffer);
      const a = acc.slice();
      if (bad !== undefined) a[bad] = Infinity;
      const codec = new RowCodec(raw, 'BF16', 'BF16', width, 'w', w);
      try {
        for (let o = 0; o < 3; o++) codec.finish(a, o * width, o * width, width);
      } catch (err) {
        return (err as Error).message;
      }
      return Buffer.from(codec.out).toString('hex');
    };
    assert.equal(run(wasm), run(undefined), `width ${width}`);
    const bad = Math.floor(rng.next() * width * 3);
    const msg = run(wasm, bad);
    assert.match(msg, new RegExp(`flat index ${bad}$`));
    assert.equal(msg, run(undefined, bad));
  }
});

test('scanSpecials finds exactly the Inf/NaN and -0 values of BF16, F16 and F32 data of awkward lengths', () => {
  const rng = new Rng(9);
  for (const [kind, exp] of [['BF16', 0x7f80], ['F16', 0x7c00], ['F32', 0]] as const) {
    for (const n of [0, 1, 15, 33, 32768, 32769, 70001]) {
      const values = kind === 'F32' ? new Uint32Array(n) : new Uint16Array(n);
      for (let i = 0; i < n; i++) values[i] = kind === 'F32' ? (rng.next() * 2 ** 32) & 0x3fffffff : (rng.next() * 65536) & 0x3fff;
      const specials = kind === 'F32' ? [0x7f800000, 0xff800000, 0x7fc00001, 0x80000000] : [exp, exp | 0x8000, exp | 1, 0x8000];
      for (let j = 0; j < Math.min(n, 40); j++) values[Math.floor(rng.next() * n)] = specials[j % 4];
      if (n > 0) values[n - 1] = specials[3]; // the last element, in a padded group
      const want: number[] = [];
      for (let i = 0; i < n; i++) {
        const h = values[i];
        if (kind === 'F32' ? (h & 0x7f800000) === 0x7f800000 || h === 0x80000000 : (h & exp) === exp || h === 0x8000) want.push(i);
      }
      wasm.arena.reset();
      assert.deepEqual(Array.from(scanSpecials(wasm, values, exp)!), want, `${kind} n=${n}`);
    }
  }
});

test('WasmLoraRows equals LoraRows bit for bit: widths, ranks and row counts that are not multiples of 2/4/8', () => {
  const rng = new Rng(13);
  for (const inF of [1, 3, 5, 13, 66]) {
    for (const r of [1, 3, 5, 16]) {
      for (const outF of [1, 6, 9]) {
        for (const scaling of [1, 0.37, 2]) {
          const A = Float32Array.from(rng.normalArray(r * inF), (v, i) => (i % 7 === 3 ? 0 : i % 11 === 5 ? -0 : v * 10 ** ((i % 5) - 2)));
          const B = Float32Array.from(rng.normalArray(outF * r), (v, i) => (i % 4 === 1 ? 0 : v));
          if (outF > 1) B[r] = Infinity; // a non-finite B gives NaN/Inf entries, the same ones on both paths
          wasm.arena.reset();
          const w = WasmLoraRows.create(wasm, A, B, r, inF, outF, scaling)!;
          const js = new LoraRows(A, B, r, inF, outF, scaling);
          // Rows out of order too: the wasm rows come in blocks of four.
          for (const o of [...Array(outF).keys(), outF - 1, 0]) {
            const got = new Uint32Array(Float32Array.from(w.row(o)).buffer);
            const want = new Uint32Array(Float32Array.from(js.row(o)).buffer);
            assert.deepEqual(got, want, `in ${inF} r ${r} out ${outF} scaling ${scaling} row ${o}`);
          }
        }
      }
    }
  }
  // LoraRows skips B = 0 terms when A holds NaN/Inf (0·Inf); the wasm rows do not, so they refuse such an A.
  assert.equal(WasmLoraRows.create(wasm, Float32Array.of(1, Infinity), Float32Array.of(1), 1, 2, 1, 1), undefined);
});

test('WasmMora6Rows equals Mora6Rows bit for bit, with wrapping bands and odd r̂/2', () => {
  const rng = new Rng(17);
  for (const [inF, outF, rHat] of [[11, 13, 4], [20, 50, 6], [64, 100, 10], [7, 9, 8], [256, 300, 32]]) {
    const M = Float32Array.from(rng.normalArray(rHat * rHat), (v, i) => (i % 6 === 2 ? -0 : v));
    wasm.arena.reset();
    const w = WasmMora6Rows.create(wasm, M, rHat, inF, outF)!;
    const js = new Mora6Rows(M, rHat, inF, outF);
    for (let o = 0; o < outF; o++) {
      assert.deepEqual(w.touched(o), js.touched(o));
      const got = new Uint32Array(Float32Array.from(w.row(o)).buffer);
      const want = new Uint32Array(Float32Array.from(js.row(o)).buffer);
      assert.deepEqual(got, want, `in ${inF} out ${outF} r̂ ${rHat} row ${o}`);
    }
  }
  assert.equal(WasmMora6Rows.create(wasm, new Float32Array(9), 3, 8, 8), undefined);
});

test('whole merges give byte-identical folders with the WASM kernels on and off (BF16/F16/F32 bases)', async () => {
  const root = await tempDir();
  const rng = new Rng(23);
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    const base = path.join(root, `base-${dtype}`);
    await tinyLlamaBase(base, { layers: 2, seed: 3, dtype });
    const lora = await writeTestAdapter(path.join(root, `lora-${dtype}`), { r: 5, lora_alpha: 7, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'lora', [0, 1], 5));
    const mora = await writeTestAdapter(path.join(root, `mora-${dtype}`), { r: 4, use_mora: true, mora_type: 6, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'mora6', [0, 1], 0));
    const cases: Omit<MergeOptions, 'out' | 'base'>[] = [...linearAndTiesCases(lora, mora), { adapters: [{ dir: mora }], dtype: 'bf16' }];
    for (const [i, c] of cases.entries()) {
      const outs = [];
      for (const on of [true, false]) {
        const out = path.join(root, `out-${dtype}-${i}-${on}`);
        await withWasm(on, () => mergeAdapters({ ...c, base, out }));
        outs.push(await hashDir(out));
      }
      assert.deepEqual(outs[0], outs[1], `${dtype} case ${i}`);
    }
  }
  await fs.rm(root, { recursive: true, force: true });
});
