// The rewrite path (a dtype change) in slabs: merged linear tensors and big converted ones are produced a few rows at a
// time into recycled buffers. Many slabs per tensor must give the whole-tensor path's bytes, progress and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { mergeAdapters, type MergeOptions } from '../../src/adapters/merge';
import { setRewriteSlabBytes } from '../../src/adapters/mergeShard';
import { Rng } from '../../src/util/rng';
import { exists, hashDir, loraModule, tempDir, tempLeftovers, TINY_LLAMA_TARGETS, tinyLlamaBase, tinyLlamaModules, writeBase, writeTestAdapter } from './mergeTestUtil';

/** Runs `fn` with the rewrite path's slab size set (undefined: whole tensors), restoring it afterwards. */
async function withSlabs<T>(bytes: number | undefined, fn: () => Promise<T>): Promise<T> {
  const was = setRewriteSlabBytes(bytes);
  try {
    return await fn();
  } finally {
    setRewriteSlabBytes(was);
  }
}

// 1000-byte slabs: 10 rows of a 48-wide BF16 weight, 3 of down_proj's 136-wide rows; the 4 MB default would be one.
const smallSlabs = 1000;

test('rewrite-path merges in many slabs equal whole tensors: BF16 -> F32/F16, LoRA and MoRA-6, progress per tensor', async () => {
  const root = await tempDir();
  const rng = new Rng(91);
  // The embedding, lm_head and MLP weights are more than two slabs, so they are converted by the slab too.
  const base = path.join(root, 'base');
  await tinyLlamaBase(base, { layers: 2, seed: 3, dtype: 'BF16' });
  const lora = await writeTestAdapter(path.join(root, 'lora'), { r: 5, lora_alpha: 7, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'lora', [0, 1], 5));
  const mora = await writeTestAdapter(path.join(root, 'mora'), { r: 4, use_mora: true, mora_type: 6, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'mora6', [0, 1], 0));
  for (const dtype of ['f32', 'f16'] as const) {
    const cases: Omit<MergeOptions, 'out' | 'base'>[] = [
      { adapters: [{ dir: lora }], dtype },
      { adapters: [{ dir: mora, weight: -0.5 }], dtype },
      { adapters: [{ dir: lora, weight: 0.7 }, { dir: mora, weight: 1.3 }], dtype },
    ];
    for (const [i, c] of cases.entries()) {
      const runs = [];
      for (const slabs of [undefined, smallSlabs]) {
        const out = path.join(root, `out-${dtype}-${i}-${slabs}`);
        const reported: string[] = [];
        await withSlabs(slabs, () => mergeAdapters({ ...c, base, out, onProgress: (p) => reported.push(p.tensor) }));
        assert.equal(new Set(reported).size, reported.length, 'each tensor reported once');
        runs.push({ hashes: await hashDir(out), reported: reported.sort() });
        await fs.rm(out, { recursive: true });
      }
      assert.deepEqual(runs[1], runs[0], `${dtype} case ${i}`);
    }
  }
  await fs.rm(root, { recursive: true, force: true });
});

test('an F16 overflow in a late slab of a merged or a converted tensor: the whole-tensor message, no output', async () => {
  const root = await tempDir();
  const P = 'model.layers.0.mlp.proj';
  const [outF, inF] = [40, 24];
  // 70 000 overflows F16 (after the merge) at a late row; a NaN further on must not be the one named.
  const bad = 35 * inF + 7;
  const values = (big: boolean) => Array.from({ length: outF * inF }, (_, i) => (big && i === bad ? 70000 : big && i === bad + inF + 2 ? NaN : (i % 50 - 25) / 16));
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, Array.from({ length: inF }, (_, i) => i / 100), [1, inF], Array.from({ length: outF }, (_, i) => (i % 3) - 1), [outF, 1]),
  ]);
  for (const inEmbed of [false, true]) {
    const base = await writeBase(path.join(root, `base-${inEmbed}`), [
      { name: 'model.embed.weight', dtype: 'BF16', shape: [outF, inF], values: values(inEmbed) },
      { name: `${P}.weight`, dtype: 'BF16', shape: [outF, inF], values: values(!inEmbed) },
    ]);
    const msgs: string[] = [];
    for (const slabs of [undefined, 100]) {
      const out = path.join(root, `out-${inEmbed}-${slabs}`);
      await withSlabs(slabs, () => mergeAdapters({ base, adapters: [{ dir: adapter }], out, dtype: 'f16' })).then(
        () => assert.fail('merge should fail'),
        (err: Error & { kind?: string }) => msgs.push(`${err.kind}: ${err.message}`),
      );
      assert.equal(await exists(out), false);
      assert.deepEqual(await tempLeftovers(root), []);
    }
    const name = inEmbed ? 'converted model.embed.weight' : `merged ${P}.weight`;
    assert.ok(msgs[0].startsWith(`NonFiniteResult: ${name} value`) && msgs[0].endsWith(`at flat index ${bad} overflows F16`), msgs[0]);
    assert.equal(msgs[1], msgs[0]);
  }
  await fs.rm(root, { recursive: true, force: true });
});
