// The copy + patch pipeline (mergePatch.ts) across many shards: the shard copies run as one chain while tensors of
// later shards are computed and held, so a failure or cancel in any shard must stop the chain and wait for every
// copy and write before the temp folder goes; a merge that succeeds gives the streamed writer's bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { mergeAdapters } from '../../src/adapters/merge';
import { MergeError } from '../../src/adapters/mergeError';
import { Rng } from '../../src/util/rng';
import { exists, hashDir, tempDir, tempLeftovers, TINY_LLAMA_TARGETS, tinyLlamaBase, tinyLlamaModules, writeTestAdapter } from './mergeTestUtil';

const kindOf = (kind: string) => (e: unknown) => e instanceof MergeError && e.kind === kind;

async function shardedF16(root: string): Promise<{ base: string; shards: string[] }> {
  const base = path.join(root, 'base');
  // ~12 KB shards: every layer spreads over several shards, so copies of later shards are queued or running while
  // earlier shards' tensors are computed.
  await tinyLlamaBase(base, { layers: 3, seed: 3, dtype: 'F16', maxShardBytes: 12_000 });
  const shards = (await fs.readdir(base)).filter((n) => n.endsWith('.safetensors'));
  return { base, shards };
}

test('copy + patch over many shards: same bytes as streamed, every untouched and merged tensor reported once', async () => {
  const root = await tempDir();
  const { base, shards } = await shardedF16(root);
  assert.ok(shards.length >= 8, `${shards.length} shards`);
  const rng = new Rng(5);
  const lora = await writeTestAdapter(path.join(root, 'lora'), { r: 2, lora_alpha: 4, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'lora', [0, 2], 2));
  const seen = new Map<string, number>();
  let total = 0;
  const patched = await mergeAdapters({ base, adapters: [{ dir: lora }], out: path.join(root, 'patch'), onProgress: (p) => {
    seen.set(p.tensor, (seen.get(p.tensor) ?? 0) + 1);
    total = p.total;
  } });
  await mergeAdapters({ base, adapters: [{ dir: lora }], out: path.join(root, 'stream'), shardStrategy: 'stream' });
  assert.deepEqual(await hashDir(path.join(root, 'patch')), await hashDir(path.join(root, 'stream')));
  assert.equal(seen.size, total);
  assert.equal(patched.tensors, total);
  assert.ok([...seen.values()].every((n) => n === 1));
  await fs.rm(root, { recursive: true, force: true });
});

test('copy + patch: an overflow in a late shard or a cancel leaves no output, no temp folder, no copy still running', async () => {
  const root = await tempDir();
  const { base, shards } = await shardedF16(root);
  const rng = new Rng(8);
  // Layer 2 only, with ΔW values near 1e5: F16 overflows in one of the last shards, after earlier ones were patched.
  const big = tinyLlamaModules(rng, 'lora', [2], 2).map((m) => ({ ...m, A: m.A.map((v) => v * 600), B: m.B.map((v) => v * 600) }));
  const overflow = await writeTestAdapter(path.join(root, 'big'), { r: 2, lora_alpha: 2, target_modules: TINY_LLAMA_TARGETS }, big);
  const fine = await writeTestAdapter(path.join(root, 'fine'), { r: 2, lora_alpha: 2, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(rng, 'lora', [0, 1, 2], 2));
  const out = path.join(root, 'out');
  // Watch the shard copies (mergePatch.ts calls fs.promises.copyFile), made slow like a big shard's: none may run or
  // start once the merge has failed, and the chain must stop at the failure rather than copy the remaining shards.
  const copyFile = fs.copyFile;
  let running = 0;
  let starts = 0;
  let lateStarts = 0;
  let failed = false;
  fs.copyFile = (async (...args: Parameters<typeof copyFile>) => {
    if (failed) lateStarts++;
    starts++;
    running++;
    try {
      await new Promise((r) => setTimeout(r, 20));
      return await copyFile(...args);
    } finally {
      running--;
    }
  }) as typeof copyFile;
  const settled = async () => {
    assert.equal(running, 0, 'a shard copy still running after the merge failed');
    failed = true;
    assert.equal(await exists(out), false);
    assert.deepEqual(await tempLeftovers(root), []);
    // A copy or write still running after the merge returned would recreate the temp folder's files.
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await tempLeftovers(root), []);
    assert.equal(lateStarts, 0, 'a shard copy started after the merge failed');
    failed = false;
  };
  try {
    await assert.rejects(mergeAdapters({ base, adapters: [{ dir: overflow }], out }), kindOf('NonFiniteResult'));
    assert.ok(starts < shards.length, `${starts} of ${shards.length} shards copied by a merge that failed in a late shard`);
    await settled();
    for (const after of [1, 5, 20]) {
      const ac = new AbortController();
      starts = 0;
      let events = 0;
      const onProgress = () => {
        if (++events === after) ac.abort();
      };
      await assert.rejects(mergeAdapters({ base, adapters: [{ dir: fine }], out, signal: ac.signal, onProgress }), kindOf('Cancelled'));
      assert.ok(events >= after);
      assert.ok(starts < shards.length, `cancelled after ${after} tensors, ${starts} of ${shards.length} shards copied`);
      await settled();
    }
    await mergeAdapters({ base, adapters: [{ dir: fine }], out });
  } finally {
    fs.copyFile = copyFile; // also when an assertion fails, so later tests copy for real
  }
  assert.equal(await exists(out), true);
  await fs.rm(root, { recursive: true, force: true });
});

test('copy + patch: a progress callback that throws fails the merge and leaves no output file open', async (t) => {
  // Open descriptors are listed under /proc/self/fd on Linux; elsewhere there is nothing to look at.
  if (!(await exists('/proc/self/fd'))) return t.skip('no /proc/self/fd');
  const root = await tempDir();
  const { base } = await shardedF16(root);
  const lora = await writeTestAdapter(path.join(root, 'lora'), { r: 2, lora_alpha: 4, target_modules: TINY_LLAMA_TARGETS }, tinyLlamaModules(new Rng(6), 'lora', [0, 1, 2], 2));
  const out = path.join(root, 'out');
  // Untouched tensors are reported once their shard's copy has ended, as the output shard is opened for patching.
  const onProgress = (p: { merged: boolean }) => {
    if (!p.merged) throw new Error('progress display gone');
  };
  await assert.rejects(mergeAdapters({ base, adapters: [{ dir: lora }], out, onProgress }), /progress display gone/);
  const open: string[] = [];
  for (const fd of await fs.readdir('/proc/self/fd')) {
    const target = await fs.readlink(path.join('/proc/self/fd', fd)).catch(() => '');
    if (target.startsWith(root)) open.push(target);
  }
  assert.deepEqual(open, []);
  assert.equal(await exists(out), false);
  assert.deepEqual(await tempLeftovers(root), []);
  await fs.rm(root, { recursive: true, force: true });
});
