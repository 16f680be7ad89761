// The two ways a dtype-keeping merge writes a shard — copy + patch and streamed — give the same bytes, on a sharded
// tiny model, for every kind of merge, with chunks small enough to cut tensors' neighbours into many pieces; and a
// failing or cancelled streamed merge leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { mergeAdapters, type MergeOptions } from '../../src/adapters/merge';
import { MergeError } from '../../src/adapters/mergeError';
import { BufferPool, setStreamChunk } from '../../src/adapters/mergeStream';
import { SerialWriter } from '../../src/adapters/mergeWriter';
import { Rng } from '../../src/util/rng';
import { exists, hashDir, linearAndTiesCases, loraModule, tempDir, tempLeftovers, TINY_LLAMA_TARGETS, tinyLlamaBase, tinyLlamaModules, writeBase, writeTestAdapter } from './mergeTestUtil';

async function withChunk<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
  const was = setStreamChunk(bytes);
  try {
    return await fn();
  } finally {
    setStreamChunk(was);
  }
}

test('streamed and copy + patch shards are byte-identical (sharded BF16/F16/F32, LoRA, MoRA-6, weights, TIES)', async () => {
  const root = await tempDir();
  const rng = new Rng(29);
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    const base = path.join(root, `base-${dtype}`);
    // ~25 KB shards: each holds merged and untouched tensors, and the embedding fills a shard of its own.
    await tinyLlamaBase(base, { layers: 3, seed: 7, dtype, maxShardBytes: 25_000 * (dtype === 'F32' ? 2 : 1) });
    const shards = (await fs.readdir(base)).filter((n) => n.endsWith('.safetensors'));
    assert.ok(shards.length >= 4, `${dtype}: ${shards.length} shards`);
    // LoRA on layer 1 only: some shards have nothing merged, others a little.
    const lora = await writeTestAdapter(path.join(root, `lora-${dtype}`), { r: 3, lora_alpha: 5, target_modules: TINY_LLAMA_TARGETS, layers_to_transform: [1] }, tinyLlamaModules(rng, 'lora', [1], 3));
    const mora = await writeTestAdapter(path.join(root, `mora-${dtype}`), { r: 4, use_mora: true, mora_type: 6, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'mora6', [0, 1, 2], 0));
    const cases = linearAndTiesCases(lora, mora);
    for (const [i, c] of cases.entries()) {
      const hashes: Map<string, string>[] = [];
      // 4 KB chunks cut untouched runs into many reads and writes and make the reader wait for room.
      for (const [strategy, chunk] of [['patch', 0], ['stream', 8 << 20], ['stream', 4096], ['stream', 1000], ['auto', 4096]] as const) {
        const out = path.join(root, `out-${dtype}-${i}-${strategy}-${chunk}`);
        await withChunk(chunk || 8 << 20, () => mergeAdapters({ ...c, base, out, shardStrategy: strategy }));
        hashes.push(await hashDir(out));
        await fs.rm(out, { recursive: true });
      }
      for (const h of hashes.slice(1)) assert.deepEqual(h, hashes[0], `${dtype} case ${i}`);
      assert.ok(hashes[0].size >= shards.length + 1, 'shards and index are compared');
    }
  }
  await fs.rm(root, { recursive: true, force: true });
});

const P = 'model.layers.0.mlp.proj';

test('a streamed shard that fails (overflow) or is cancelled leaves no output and no temp folder', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [
    { name: 'model.embed.weight', dtype: 'F16', shape: [4096], values: Array.from({ length: 4096 }, (_, i) => i / 64) },
    { name: `${P}.weight`, dtype: 'F16', shape: [1, 2], values: [65000, 1] },
    { name: 'model.norm.weight', dtype: 'F16', shape: [4096], values: Array.from({ length: 4096 }, () => 1) },
  ]);
  const overflow = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, [1000, 0], [1, 2], [1], [1, 1]),
  ]);
  const fine = await writeTestAdapter(path.join(root, 'ok'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, [1, 0], [1, 2], [1], [1, 1]),
  ]);
  const out = path.join(root, 'out');
  const kindOf = (kind: string) => (e: unknown) => e instanceof MergeError && e.kind === kind;
  await withChunk(1024, async () => {
    await assert.rejects(mergeAdapters({ base, adapters: [{ dir: overflow }], out, shardStrategy: 'stream' }), kindOf('NonFiniteResult'));
    assert.equal(await exists(out), false);
    assert.deepEqual(await tempLeftovers(root), []);
    const ac = new AbortController();
    let events = 0;
    const cancel = { base, adapters: [{ dir: fine }], out, shardStrategy: 'stream' as const, signal: ac.signal, onProgress: () => (events++, ac.abort()) };
    await assert.rejects(mergeAdapters(cancel), kindOf('Cancelled'));
    assert.ok(events >= 1);
    assert.equal(await exists(out), false);
    assert.deepEqual(await tempLeftovers(root), []);
    // The same merge, not cancelled, streams the shard byte for byte like copy + patch.
    await mergeAdapters({ base, adapters: [{ dir: fine }], out, shardStrategy: 'stream' });
    await mergeAdapters({ base, adapters: [{ dir: fine }], out: `${out}-patch`, shardStrategy: 'patch' });
    assert.deepEqual(await hashDir(out), await hashDir(`${out}-patch`));
  });
  await assert.rejects(mergeAdapters({ base, adapters: [{ dir: fine }], out: `${out}-x`, shardStrategy: 'fast' as never }), kindOf('BadOption'));
  assert.deepEqual(await tempLeftovers(root), []);
  await fs.rm(root, { recursive: true, force: true });
});

test('BufferPool: chunk-sized buffers for big pieces, exact sizes for small ones, spares reused', () => {
  const pool = new BufferPool(1024, 4096);
  const small = pool.take(10);
  assert.equal(small.buffer.byteLength, 10); // a norm weight between merged tensors does not pin a whole chunk
  const mid = pool.take(600);
  assert.equal(mid.buffer.byteLength, 1024);
  assert.equal(pool.take(3000).buffer.byteLength, 3000);
  pool.give(mid);
  const again = pool.take(700);
  assert.equal(again.buffer, mid.buffer);
  assert.equal(again.length, 700);
});

test('an unknown shardStrategy is a BadOption before anything is written', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [{ name: `${P}.weight`, dtype: 'F32', shape: [1, 2], values: [1, 2] }]);
  const ad = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [loraModule(P, [1, 0], [1, 2], [1], [1, 1])]);
  const out = path.join(root, 'out');
  const bad = { base, adapters: [{ dir: ad }], out, shardStrategy: 'sideways' } as unknown as MergeOptions;
  await assert.rejects(mergeAdapters(bad), (e: unknown) => e instanceof MergeError && e.kind === 'BadOption');
  assert.equal(await exists(out), false);
  assert.deepEqual(await tempLeftovers(root), []);
  await fs.rm(root, { recursive: true });
});

test('SerialWriter: out-of-order, contiguous and scattered writes land at their offsets; a failure fails every later write', async () => {
  const root = await tempDir();
  const file = path.join(root, 'f.bin');
  const fh = await fs.open(file, 'wx');
  const w = new SerialWriter(fh);
  const rng = new Rng(3);
  const want = Uint8Array.from({ length: 1_300_000 }, () => rng.int(256));
  // Pieces of random sizes (some empty, some over the 512 KB a syscall takes), queued in a shuffled order, all
  // before the first write completes.
  const cuts = [0, 1, 7, 7, 100, 1024, 1025, 3000, 600_000, 1_299_999, 1_300_000];
  const pieces = cuts.slice(1).map((e, i) => [cuts[i], e] as const);
  const order = pieces.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  await Promise.all(order.map((i) => w.write(pieces[i][0], want.slice(pieces[i][0], pieces[i][1]))));
  await w.drain();
  await fh.close();
  assert.deepEqual(new Uint8Array(await fs.readFile(file)), want);
  // A closed handle: the queued write and every later one reject with the same error.
  const errs = await Promise.allSettled([w.write(0, want.subarray(0, 10)), w.write(10, want.subarray(10, 20))]);
  assert.ok(errs.every((r) => r.status === 'rejected'));
  await assert.rejects(w.write(20, want.subarray(20, 30)));
  await fs.rm(root, { recursive: true, force: true });
});
