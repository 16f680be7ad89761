// The row-wise TIES merge (tiesRows.ts) and its WASM kernels (tiesWasm.ts) against whole-tensor references:
// magnitudePrune + tiesCombine (ties.ts) for the arithmetic, tiesRow (mergeKernels.ts) for the combination, and
// the JS loops for the kernels. Bit for bit, on awkward sizes, equal magnitudes, signed zeros, NaN/Inf and
// densities 0 … 1, with 1-4 tasks (4 takes the JS combination even with the kernels on).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { float32ToBytes } from '../../src/safetensors';
import { mergeAdapters } from '../../src/adapters/merge';
import { RowCodec } from '../../src/adapters/mergeCodec';
import { tiesRow, type DeltaRows } from '../../src/adapters/mergeKernels';
import { addBaseInto, encodeChecked } from '../../src/adapters/mergeTensor';
import { mergeWasm, setMergeWasm } from '../../src/adapters/mergeWasm';
import { magnitudePrune, tiesCombine } from '../../src/adapters/ties';
import { mergeTiesRows, tiesTask, trimRange, trimTask } from '../../src/adapters/tiesRows';
import { TiesWasm } from '../../src/adapters/tiesWasm';
import { Rng } from '../../src/util/rng';
import { hashDir, requireMergeWasm, tempDir, TINY_LLAMA_TARGETS, tinyLlamaBase, tinyLlamaModules, withWasm, writeTestAdapter } from './mergeTestUtil';

const wasm = requireMergeWasm();

const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
/** Bits with -0 read as +0: where a trimmed zero's sign is not part of the contract. */
const zeroBlind = (x: Float32Array) => Uint32Array.from(bitsOf(x), (b) => (b === 0x80000000 ? 0 : b));

/** Rows of a given [out, in] array; with `bands`, a sparse task whose entries outside the bands are +0. */
class ArrayRows implements DeltaRows {
  private readonly buf: Float32Array;
  touched?: (o: number) => [number, number, number];

  constructor(private readonly full: Float32Array, readonly inF: number, readonly outF: number, width?: number) {
    this.buf = new Float32Array(inF);
    if (width !== undefined) {
      // Bands like MoRA type 6: start (o·3 mod in), `width` columns, wrapping around the row.
      const band = (o: number): [number, number, number] => {
        const s = (o * 3) % inF;
        return [s, Math.min(s + width, inF), Math.max(0, s + width - inF)];
      };
      this.touched = band;
      for (let o = 0; o < outF; o++) {
        const [s, e, wrap] = band(o);
        for (let j = 0; j < inF; j++) if (!(j < wrap || (j >= s && j < e))) full[o * inF + j] = 0;
      }
    }
  }

  row(o: number): Float32Array {
    this.buf.set(this.full.subarray(o * this.inF, (o + 1) * this.inF));
    return this.buf;
  }
}

type Mode = 'normal' | 'equal' | 'special';
function values(rng: Rng, n: number, mode: Mode): Float32Array {
  const x = Float32Array.from(rng.normalArray(n));
  const pick = [1, -1, 2, -2, 0.5, -0.5, 0, -0];
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    if (mode === 'equal') x[i] = pick[Math.floor(u * pick.length)];
    else if (u < 0.1) x[i] = u < 0.05 ? 0 : -0;
    else if (mode === 'special' && u > 0.995) x[i] = u > 0.998 ? NaN : u > 0.9965 ? Infinity : -Infinity;
    else if (mode === 'special' && u > 0.9) x[i] = u > 0.95 ? 1e-45 * Math.floor(u * 100) : -3e-41; // bucket 0 of the radix select
  }
  return x;
}

/** magnitudePrune + tiesCombine over whole tensors + the base, rounded: mergeTensorF32's TIES arithmetic. */
function reference(full: Float32Array[], weights: number[], density: number, base: Uint8Array, from: 'BF16' | 'F32' | 'F16', to: 'BF16' | 'F32' | 'F16'): Buffer | string {
  try {
    const acc = tiesCombine(full.map((f) => f.slice()), weights, density);
    addBaseInto(acc, base, from);
    return Buffer.from(encodeChecked(acc, to, 'w'));
  } catch (err) {
    return (err as Error).message;
  }
}

function rowMerge(rows: DeltaRows[], weights: number[], density: number, base: Uint8Array, from: 'BF16' | 'F32' | 'F16', to: 'BF16' | 'F32' | 'F16'): Buffer | string {
  const w = mergeWasm();
  w?.arena.reset();
  try {
    const codec = new RowCodec(base.slice(), from, to, rows[0].inF, 'w', w);
    mergeTiesRows(rows, weights, density, codec);
    return Buffer.from(codec.out);
  } catch (err) {
    return (err as Error).message;
  }
}

test('mergeTiesRows equals magnitudePrune + tiesCombine bit for bit (sizes, equal magnitudes, ±0, NaN/Inf, 1-4 tasks)', () => {
  const rng = new Rng(77);
  const was = setMergeWasm(true); // restored at the end, whatever MORA_KERNELS asked for
  const sizes: [number, number, number | undefined][] = [[1, 1, undefined], [3, 5, 2], [7, 13, 4], [17, 33, 8], [5, 1000, 30], [64, 64, 8], [6, 9, 9]];
  const weightSets = [[1], [-0.5, 2.5], [1, 0, 0.75], [0.3, -1, 2, -0]];
  const densities = [0, 0.001, 0.25, 0.5, 2 / 3, 0.999, 1];
  const dtypes: ['BF16' | 'F32' | 'F16', 'BF16' | 'F32' | 'F16'][] = [['BF16', 'BF16'], ['F32', 'F32'], ['F16', 'F16'], ['BF16', 'F32']];
  let cases = 0;
  let combo = 0;
  for (const [outF, inF, width] of sizes) {
    for (const weights of weightSets) {
      for (const mode of ['normal', 'equal', 'special'] as Mode[]) {
        // Every dtype pair for one task (the pass-through and the expanded-band paths), one in turn for more.
        for (const [from, to] of weights.length === 1 ? dtypes : [dtypes[combo++ % dtypes.length]]) {
          const W = Float32Array.from(rng.normalArray(outF * inF), (v, i) => (i % 5 === 1 ? -0 : v));
          const base = float32ToBytes(W, from);
          // Task 0 sparse where a band width is given, the others alternate dense / sparse.
          const full = weights.map(() => values(rng, outF * inF, mode));
          const rows = full.map((f, t) => new ArrayRows(f, inF, outF, t % 2 === 0 ? width : undefined));
          for (const density of densities) {
            const want = reference(full, weights, density, base, from, to);
            for (const on of [true, false]) {
              setMergeWasm(on);
              const got = rowMerge(rows, weights, density, base, from, to);
              const what = `${outF}x${inF} band ${width} K ${weights.length} ${mode} d ${density} ${from}->${to} wasm ${on}`;
              assert.deepEqual(got, want, what);
              cases++;
            }
          }
        }
      }
    }
  }
  setMergeWasm(was);
  assert.ok(cases > 1000);
});

test('trimTask keeps what magnitudePrune keeps (zero signs aside), dense and compact, kernels on and off', () => {
  const rng = new Rng(5);
  for (const [outF, inF, width] of [[4, 7, 3], [33, 17, 5], [16, 256, 16], [9, 10, undefined]] as const) {
    for (const mode of ['normal', 'equal', 'special'] as Mode[]) {
      const full = values(rng, outF * inF, mode);
      const rows = new ArrayRows(full, inF, outF, width);
      for (const density of [0, 0.01, 0.1, 0.3, 0.5, 0.9, 1]) {
        const want = magnitudePrune(full.slice(), density);
        for (const on of [true, false]) {
          wasm.arena.reset();
          const task = tiesTask(rows);
          assert.equal(task.band !== undefined, width !== undefined);
          trimTask(task, outF * inF, density, on ? new TiesWasm(wasm, 1, inF) : undefined);
          // Back to the flat layout: the compact values sit at their columns, every other entry is +0.
          const got = new Float32Array(outF * inF);
          const b = task.band;
          if (!b) got.set(task.values);
          else {
            for (let o = 0; o < outF; o++) {
              const row = task.values.subarray(b.start[o], b.start[o + 1]);
              got.set(row.subarray(0, b.wrap[o]), o * inF);
              got.set(row.subarray(b.wrap[o]), o * inF + b.s[o]);
            }
          }
          assert.deepEqual(zeroBlind(got), zeroBlind(want), `${outF}x${inF} ${mode} d ${density} wasm ${on}`);
        }
      }
    }
  }
});

test('TIES kernels equal the JS loops: histograms, trim at every threshold kind, combination of 1-3 rows', () => {
  const rng = new Rng(9);
  const specials = [0, -0, NaN, Infinity, -Infinity, 1e-45, -1e-45, 3.4028234663852886e38, 1, -1, 2, -2];
  for (const n of [1, 2, 3, 5, 8, 31, 64, 1001, 40000]) {
    const x = Float32Array.from({ length: n }, (_, i) => (i % 7 === 3 ? specials[i % specials.length] : rng.normal()));
    wasm.arena.reset();
    const tw = new TiesWasm(wasm, 3, n);
    const bits = bitsOf(x);
    const hist = new Uint32Array(65536);
    tw.histogram(bits, hist, -1);
    const want = new Uint32Array(65536);
    for (const b of bits) want[(b & 0x7fffffff) >>> 16]++;
    assert.deepEqual(hist, want, `hist n ${n}`);
    const hi = (bits[n >> 1] & 0x7fffffff) >>> 16;
    tw.histogram(bits, hist, hi);
    want.fill(0);
    for (const b of bits) if (((b & 0x7fffffff) >>> 16) === hi) want[b & 0xffff]++;
    assert.deepEqual(hist, want, `histLo n ${n}`);
    for (const t of [0, 1, bits[n >> 1] & 0x7fffffff, 0x7f800000, 0x7fffffff, 0x80000000]) {
      const a = Uint32Array.from(bits);
      const b = Uint32Array.from(bits);
      tw.trim(a, 1, n, t);
      trimRange(b, 1, n, t);
      assert.deepEqual(a, b, `trim n ${n} t ${t}`);
    }
    for (const weights of [[1], [-0.5], [0.7, -1.3], [1, 0, 2], [-0, 2.5, 1e300]]) {
      if (weights.length > 3) continue;
      const rows = weights.map((_, t) => (t === 0 ? x : Float32Array.from({ length: n }, (_, i) => (i % 5 === t ? specials[(i + t) % specials.length] : rng.normal()))));
      rows.forEach((r, t) => tw.row(t).set(r));
      const got = Float32Array.from(tw.combine(weights, n));
      const ref = new Float32Array(n);
      tiesRow(rows, weights, 0, n, ref);
      assert.deepEqual(zeroBlind(got), zeroBlind(ref), `combine n ${n} w ${weights}`);
      assert.deepEqual(bitsOf(got).map((v) => +(v === 0x80000000)), bitsOf(ref).map((v) => +(v === 0x80000000)), `signed zeros n ${n}`);
    }
  }
});

test('whole TIES merges are byte-identical with the kernels on and off (1-3 adapters, densities 0, 0.3, 1)', async () => {
  const root = await tempDir();
  const rng = new Rng(31);
  for (const dtype of ['BF16', 'F32'] as const) {
    const base = path.join(root, `base-${dtype}`);
    await tinyLlamaBase(base, { layers: 2, seed: 4, dtype });
    const lora = await writeTestAdapter(path.join(root, `lora-${dtype}`), { r: 5, lora_alpha: 7, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'lora', [0, 1], 5));
    const lora2 = await writeTestAdapter(path.join(root, `lora2-${dtype}`), { r: 3, lora_alpha: 3, target_modules: ['q_proj', 'down_proj'] }, tinyLlamaModules(rng, 'lora', [1], 3).filter((m) => /q_proj|down_proj/.test(m.path)));
    const mora = await writeTestAdapter(path.join(root, `mora-${dtype}`), { r: 4, use_mora: true, mora_type: 6, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'mora6', [0, 1], 0));
    const sets = [[{ dir: mora }], [{ dir: mora }, { dir: lora, weight: 0.6 }], [{ dir: lora }, { dir: mora, weight: -1.2 }, { dir: lora2, weight: 2 }]];
    for (const [i, adapters] of sets.entries()) {
      for (const density of [0, 0.3, 1]) {
        const outs = [];
        for (const on of [true, false]) {
          const out = path.join(root, `out-${dtype}-${i}-${density}-${on}`);
          await withWasm(on, () => mergeAdapters({ base, adapters, out, method: 'ties', density }));
          outs.push(await hashDir(out));
        }
        assert.deepEqual(outs[0], outs[1], `${dtype} set ${i} d ${density}`);
      }
    }
  }
  await fs.rm(root, { recursive: true, force: true });
});
