// The WASM kernels of the merge's dtype changes (mergeWasmConvert.ts) against RowCodec's JS loops: the same bytes
// for every BF16/F16 bit pattern and edge float32 values, with and without a ΔW row, the same groups refused, the
// same error for the first bad element, and byte-identical whole merges with --dtype f16/bf16/f32.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { mergeAdapters, type MergeOptions } from '../../src/adapters/merge';
import { RowCodec } from '../../src/adapters/mergeCodec';
import { WasmConvRows, type ConvDtype } from '../../src/adapters/mergeWasmConvert';
import { Rng } from '../../src/util/rng';
import { hashDir, loraModule, requireMergeWasm, tempDir, TINY_LLAMA_TARGETS, tinyLlamaBase, tinyLlamaModules, withWasm, writeBase, writeTestAdapter } from './mergeTestUtil';

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];
const wasm = requireMergeWasm();

const pairs: [ConvDtype, ConvDtype][] = [['BF16', 'F16'], ['BF16', 'F32'], ['F16', 'BF16'], ['F16', 'F32'], ['F32', 'BF16'], ['F32', 'F16']];

// ΔW values: signed zeros, subnormals, ordinary values, values at and around the F16/BF16 overflow and rounding
// thresholds, NaN and ±Inf.
const deltas = [
  0, -0, f32(0x00000001), f32(0x80000001), f32(0x007fffff), 1e-40, 2 ** -25, 2 ** -24, 3 * 2 ** -26, 1, -1, 0.3, -2.5e-3, 1e4, -6.5e4,
  65504, 65519.99, 65520, 1e30, 3.3e38, -3.3e38, f32(0x7f7f7fff), f32(0x7f7f8000), NaN, Infinity, -Infinity,
];

/** Every 16-bit pattern, or for F32 every upper half with low halves that sit on the F16/BF16 rounding boundaries. */
function inputs(from: ConvDtype): Uint8Array {
  if (from !== 'F32') return new Uint8Array(Uint16Array.from({ length: 65536 }, (_, h) => h).buffer);
  const lows = [0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0xa5a5, 0xefff, 0xf000, 0xffff];
  const bits = new Uint32Array(65536 * lows.length);
  for (let h = 0; h < 65536; h++) for (let j = 0; j < lows.length; j++) bits[h * lows.length + j] = ((h << 16) | lows[j]) >>> 0;
  return new Uint8Array(bits.buffer);
}

test('conversion kernels: every BF16/F16 pattern and F32 rounding boundaries × edge deltas, same bytes and same refused groups as JS', () => {
  for (const [from, to] of pairs) {
    const raw = inputs(from);
    const inSize = from === 'F32' ? 4 : 2;
    const outSize = to === 'F32' ? 4 : 2;
    const n = raw.length / inSize;
    for (const d of [undefined, ...deltas]) {
      if (from === 'F32' && d !== undefined && deltas.indexOf(d) % 4 !== 0) continue; // F32 inputs are 14× larger
      const acc = d === undefined ? undefined : new Float32Array(n).fill(d);
      // Reference: RowCodec's JS loops a group of 8 at a time; a group that throws is one the kernel must refuse.
      const js = new RowCodec(raw.slice(), from, to, 8, 'x');
      const bad = new Uint8Array(n / 8);
      const stackLimit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0; // thousands of refused groups: skip the stack traces
      for (let g = 0; g < n; g += 8) {
        try {
          js.finish(acc, g, g, 8);
        } catch {
          bad[g / 8] = 1;
        }
      }
      Error.stackTraceLimit = stackLimit;
      wasm.arena.reset();
      const conv = WasmConvRows.create(wasm, from, to, n)!;
      const out = new Uint8Array(n * outSize);
      const what = `${from} -> ${to}, delta ${d}`;
      for (let at = 0; at < n;) {
        // Windows of 4096 values: restarting after each refused group must not copy the whole rest in again.
        const m = Math.min(4096 - (at % 4096), n - at);
        const done = conv.run(raw, out, acc, at, at, m);
        const stop = at + done;
        if (done === m) {
          at = stop;
          continue;
        }
        if (bad.subarray(at / 8, stop / 8).includes(1)) assert.fail(`${what}: a group in [${at}, ${stop}) has a bad value`);
        if (bad[stop / 8] !== 1) assert.fail(`${what}: group ${stop} refused but clean`);
        // Bytes of refused groups are not compared: the JS loop writes them (or throws) on the real path.
        js.out.set(out.subarray(stop * outSize, (stop + 8) * outSize), stop * outSize);
        at = stop + 8;
      }
      if (!Buffer.from(out).equals(Buffer.from(js.out))) {
        let i = 0;
        while (out[i] === js.out[i]) i++;
        const e = Math.floor(i / outSize);
        assert.fail(`${what}: element ${e} (input ${Buffer.from(raw.subarray(e * inSize, (e + 1) * inSize)).toString('hex')}) differs`);
      }
    }
  }
});

test('RowCodec.finish with and without WASM for every dtype change: awkward widths, in place and not, same first error', () => {
  const rng = new Rng(31);
  for (const [from, to] of [...pairs, ['BF16', 'BF16'] as [ConvDtype, ConvDtype]]) {
    for (const width of [1, 7, 8, 31, 32, 33, 77, 1000]) {
      const n = width * 3;
      const raw = new Uint8Array(n * (from === 'F32' ? 4 : 2));
      const u16 = new Uint16Array(raw.buffer);
      const u32 = new Uint32Array(raw.buffer, 0, from === 'F32' ? n : 0);
      // Finite values of every exponent that stays finite in every output dtype (|x| < 2^15), signs, zeros, -0.
      for (let i = 0; i < n; i++) {
        const v = (rng.next() < 0.5 ? -1 : 1) * 2 ** (rng.next() * 50 - 35) * (i % 13 === 0 ? 0 : 1);
        if (from === 'F32') u32[i] = new Uint32Array(Float32Array.of(v).buffer)[0];
        else u16[i] = from === 'BF16' ? new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16 : Math.floor(rng.next() * 0x7800) | (i % 2 ? 0x8000 : 0);
      }
      const acc = Float32Array.from(rng.normalArray(n), (v, i) => (i % 5 === 0 ? -0 : v * 10 ** ((i % 7) - 4)));
      const run = (w: typeof wasm | undefined, withAcc: boolean, bad?: number) => {
        w?.arena.reset();
        const a = acc.slice();
        if (bad !== undefined) a[bad] = bad % 2 ? Infinity : 1e6; // NaN/Inf, or an F16 overflow
        const codec = new RowCodec(raw.slice(), from, to, width, 'w', w);
        try {
          for (let o = 0; o < 3; o++) codec.finish(withAcc || bad !== undefined ? a : undefined, o * width, o * width, width);
        } catch (err) {
          return (err as Error).message;
        }
        return Buffer.from(codec.out).toString('hex');
      };
      for (const withAcc of [false, true]) assert.equal(run(wasm, withAcc), run(undefined, withAcc), `${from} -> ${to} width ${width} acc ${withAcc}`);
      const bad = Math.floor(rng.next() * n);
      const msg = run(wasm, true, bad);
      if (to === 'F16' || bad % 2) assert.match(msg, new RegExp(`flat index ${bad}( overflows F16)?$`), `${from} -> ${to}`);
      assert.equal(msg, run(undefined, true, bad), `${from} -> ${to} width ${width} bad ${bad}`);
    }
  }
});

test('whole merges with --dtype f16/bf16/f32 give byte-identical folders with the kernels on and off', async () => {
  const root = await tempDir();
  const rng = new Rng(37);
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    const base = path.join(root, `base-${dtype}`);
    await tinyLlamaBase(base, { layers: 2, seed: 5, dtype });
    const lora = await writeTestAdapter(path.join(root, `lora-${dtype}`), { r: 5, lora_alpha: 7, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'lora', [0, 1], 5));
    const mora = await writeTestAdapter(path.join(root, `mora-${dtype}`), { r: 4, use_mora: true, mora_type: 6, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'mora6', [0], 0));
    for (const out of ['f16', 'bf16', 'f32'] as const) {
      if (out === dtype.toLowerCase()) continue;
      const cases: Omit<MergeOptions, 'out' | 'base'>[] = [
        { adapters: [{ dir: lora }], dtype: out },
        { adapters: [{ dir: mora }], dtype: out },
        { adapters: [{ dir: mora, weight: -0.5 }], dtype: out },
        { adapters: [{ dir: lora, weight: 0.7 }, { dir: mora, weight: 1.3 }], dtype: out },
      ];
      for (const [i, c] of cases.entries()) {
        const outs = [];
        for (const on of [true, false]) {
          const dir = path.join(root, `out-${dtype}-${out}-${i}-${on}`);
          await withWasm(on, () => mergeAdapters({ ...c, base, out: dir }));
          outs.push(await hashDir(dir));
        }
        assert.deepEqual(outs[0], outs[1], `${dtype} -> ${out} case ${i}`);
      }
    }
  }
  await fs.rm(root, { recursive: true, force: true });
});

test('an F16 overflow in a converted and in a merged tensor: the same NonFiniteResult message with the kernels on and off', async () => {
  const root = await tempDir();
  const P = 'model.layers.0.mlp.proj';
  const values = (big: number) => Array.from({ length: 80 }, (_, i) => (i === big ? 70000 : (i - 40) / 8));
  for (const [bigEmbed, bigProj] of [[57, -1], [-1, 45]]) {
    const base = await writeBase(path.join(root, `base-${bigEmbed}`), [
      { name: 'model.embed.weight', dtype: 'F32', shape: [2, 40], values: values(bigEmbed) },
      { name: `${P}.weight`, dtype: 'F32', shape: [2, 40], values: values(bigProj) },
    ]);
    const adapter = await writeTestAdapter(path.join(root, `ad-${bigEmbed}`), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
      loraModule(P, Array.from({ length: 40 }, (_, i) => i / 100), [1, 40], [1, -1], [2, 1]),
    ]);
    const msgs: string[] = [];
    for (const on of [true, false]) {
      const opts: MergeOptions = { base, adapters: [{ dir: adapter }], out: path.join(root, `out-${bigEmbed}-${on}`), dtype: 'f16' };
      await withWasm(on, () => mergeAdapters(opts)).then(
        () => assert.fail('merge should fail'),
        (err: Error & { kind?: string }) => msgs.push(`${err.kind}: ${err.message}`),
      );
    }
    const [name, idx] = bigEmbed >= 0 ? ['converted model.embed.weight', bigEmbed] : [`merged ${P}.weight`, bigProj];
    assert.ok(msgs[0].startsWith(`NonFiniteResult: ${name} value`) && msgs[0].endsWith(`at flat index ${idx} overflows F16`), msgs[0]);
    assert.equal(msgs[0], msgs[1]);
  }
  await fs.rm(root, { recursive: true, force: true });
});

test('an untouched BF16 tensor that grows to F32 is written in pieces: exact values, whole-tensor index in errors', async () => {
  const root = await tempDir();
  const P = 'model.layers.0.mlp.proj';
  // 2.5M values: 10 MB as F32, more than two 4 MB slabs; values of every exponent, -0 and subnormals included.
  const n = 2_500_000;
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) bits[i] = (i * 40503) & 0xffff;
  for (let i = 0; i < n; i++) if ((bits[i] & 0x7f80) === 0x7f80) bits[i] &= 0xbfff; // no Inf/NaN yet
  const embed = new Uint8Array(bits.buffer);
  const writeModel = async (dir: string, e: Uint8Array) => {
    await fs.mkdir(dir, { recursive: true });
    const { writeSafetensors } = await import('../../src/safetensors');
    await writeSafetensors(path.join(dir, 'model.safetensors'), [
      { name: 'model.embed.weight', dtype: 'BF16', shape: [n / 100, 100], data: e },
      { name: `${P}.weight`, dtype: 'BF16', shape: [2, 40], data: new Uint8Array(160) },
    ]);
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', torch_dtype: 'bfloat16' }));
  };
  const base = path.join(root, 'base');
  await writeModel(base, embed);
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, Array.from({ length: 40 }, (_, i) => i / 100), [1, 40], [1, -1], [2, 1]),
  ]);
  const hashes = [];
  for (const on of [true, false]) {
    const out = path.join(root, `out-${on}`);
    await withWasm(on, () => mergeAdapters({ base, adapters: [{ dir: adapter }], out, dtype: 'f32' }));
    hashes.push(await hashDir(out));
    const { ModelWeights } = await import('../../src/safetensors');
    const w = await ModelWeights.open(out);
    const got = new Uint32Array((await w.readFloat32('model.embed.weight')).buffer);
    await w.close();
    for (let i = 0; i < n; i++) if (got[i] !== (bits[i] << 16) >>> 0) assert.fail(`kernels ${on}: value ${i} is 0x${got[i].toString(16)}, want 0x${((bits[i] << 16) >>> 0).toString(16)}`);
  }
  assert.deepEqual(hashes[0], hashes[1]);
  // A NaN in the third piece is named by its index in the whole tensor, on both paths.
  const bad = 2_345_679;
  const withNaN = embed.slice();
  new Uint16Array(withNaN.buffer)[bad] = 0x7fc1;
  const nanBase = path.join(root, 'base-nan');
  await writeModel(nanBase, withNaN);
  for (const on of [true, false]) {
    await withWasm(on, () => mergeAdapters({ base: nanBase, adapters: [{ dir: adapter }], out: path.join(root, `nan-${on}`), dtype: 'f32' })).then(
      () => assert.fail('merge should fail'),
      (err: Error) => assert.equal(err.message, `converted model.embed.weight has a non-finite value (NaN) at flat index ${bad}`),
    );
  }
  await fs.rm(root, { recursive: true, force: true });
});
