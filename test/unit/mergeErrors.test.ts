// Bad inputs give a named MergeError and write nothing: no output folder, no temp leftovers, inputs untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { mergeAdapters, type MergeOptions } from '../../src/adapters/merge';
import { MergeError, type MergeErrorKind } from '../../src/adapters/mergeError';
import { exists, loraModule, tempDir, tempLeftovers, writeBase, writeTestAdapter } from './mergeTestUtil';

const P = 'model.layers.0.mlp.proj';
const Q = 'model.layers.0.mlp.other';

async function setup() {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [
    { name: `${P}.weight`, dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 4] },
    { name: 'model.norm.weight', dtype: 'F32', shape: [2], values: [1, 1] },
  ]);
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, [1, 1], [1, 2], [1, 1], [2, 1]),
  ]);
  return { root, base, adapter, out: path.join(root, 'out') };
}

async function digest(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const f of (await fs.readdir(dir)).sort()) h.update(f).update(await fs.readFile(path.join(dir, f)));
  return h.digest('hex');
}

/** Runs a merge that must fail with `kind`, then checks that nothing was written and the inputs are unchanged. */
async function expectFailure(root: string, opts: MergeOptions, kind: MergeErrorKind, message?: RegExp): Promise<void> {
  const before = [await digest(opts.base), ...(await Promise.all(opts.adapters.map((a) => digest(a.dir))))];
  await assert.rejects(mergeAdapters(opts), (e: unknown) => {
    assert.ok(e instanceof MergeError, `expected MergeError, got ${String(e)}`);
    assert.equal(e.name, 'MergeError');
    assert.equal(e.kind, kind, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
  assert.equal(await exists(opts.out), false, 'output folder must not exist');
  assert.deepEqual(await tempLeftovers(root), [], 'no temp folders may remain');
  const after = [await digest(opts.base), ...(await Promise.all(opts.adapters.map((a) => digest(a.dir))))];
  assert.deepEqual(after, before, 'inputs must not change');
}

test('truncated adapter_model.safetensors -> InvalidAdapter naming the safetensors error', async () => {
  const { root, base, adapter, out } = await setup();
  const file = path.join(adapter, 'adapter_model.safetensors');
  const full = await fs.readFile(file);
  await fs.writeFile(file, full.subarray(0, full.length - 5));
  await expectFailure(root, { base, adapters: [{ dir: adapter }], out }, 'InvalidAdapter', /SafetensorsError/);
  await fs.rm(root, { recursive: true, force: true });
});

test('config says r=8 but the tensors are r=4 -> RankMismatch', async () => {
  const { root, base, out } = await setup();
  const adapter = await writeTestAdapter(path.join(root, 'ad4'), { r: 4, lora_alpha: 8, target_modules: ['proj'] }, [
    loraModule(P, new Array(8).fill(0.1), [4, 2], new Array(8).fill(0.1), [2, 4]),
  ]);
  const cfgFile = path.join(adapter, 'adapter_config.json');
  const cfg = JSON.parse(await fs.readFile(cfgFile, 'utf8'));
  await fs.writeFile(cfgFile, JSON.stringify({ ...cfg, r: 8 }));
  await expectFailure(root, { base, adapters: [{ dir: adapter }], out }, 'RankMismatch', /r=8|says 8/);
  await fs.rm(root, { recursive: true, force: true });
});

test('adapter made for another architecture -> ArchitectureMismatch (by module names and by config.json)', async () => {
  const { root, base, out } = await setup();
  // GPT-2 module paths do not exist in a LLaMA-style base.
  const gpt2 = await writeTestAdapter(path.join(root, 'gpt2ad'), { r: 1, lora_alpha: 1, fan_in_fan_out: true, target_modules: ['c_attn'] }, [
    loraModule('transformer.h.0.attn.c_attn', [1, 1], [1, 2], [1, 1, 1, 1, 1, 1], [6, 1]),
  ]);
  await expectFailure(root, { base, adapters: [{ dir: gpt2 }], out }, 'ArchitectureMismatch', /another architecture/);
  // Same tensor names, but the adapter records a local base folder whose model_type differs.
  const other = await writeBase(path.join(root, 'otherBase'), [{ name: `${P}.weight`, dtype: 'F32', shape: [2, 2], values: [0, 0, 0, 0] }], 'gpt2');
  const recorded = await writeTestAdapter(path.join(root, 'ad2'), { r: 1, lora_alpha: 1, target_modules: ['proj'], base_model_name_or_path: other }, [
    loraModule(P, [1, 1], [1, 2], [1, 1], [2, 1]),
  ]);
  await expectFailure(root, { base, adapters: [{ dir: recorded }], out }, 'ArchitectureMismatch', /model_type gpt2/);
  await fs.rm(root, { recursive: true, force: true });
});

test('shape mismatch and missing target tensor', async () => {
  const { root, base, out } = await setup();
  const wide = await writeTestAdapter(path.join(root, 'wide'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, [1, 1, 1], [1, 3], [1, 1], [2, 1]),
  ]);
  await expectFailure(root, { base, adapters: [{ dir: wide }], out }, 'ShapeMismatch');
  const partial = await writeTestAdapter(path.join(root, 'partial'), { r: 1, lora_alpha: 1, target_modules: ['proj', 'other'] }, [
    loraModule(P, [1, 1], [1, 2], [1, 1], [2, 1]),
    loraModule(Q, [1, 1], [1, 2], [1, 1], [2, 1]),
  ]);
  await expectFailure(root, { base, adapters: [{ dir: partial }], out }, 'MissingTargetTensor', /mlp\.other\.weight/);
  await fs.rm(root, { recursive: true, force: true });
});

test('a merged value that overflows F16 -> NonFiniteResult, temp folder removed', async () => {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [
    { name: 'model.embed.weight', dtype: 'F16', shape: [2], values: [1, 2] }, // copied before the failure
    { name: `${P}.weight`, dtype: 'F16', shape: [1, 2], values: [65000, 1] },
  ]);
  // 65000 + 1000 > 65520: rounds to +Inf in f16.
  const adapter = await writeTestAdapter(path.join(root, 'ad'), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [
    loraModule(P, [1000, 0], [1, 2], [1], [1, 1]),
  ]);
  await expectFailure(root, { base, adapters: [{ dir: adapter }], out: path.join(root, 'out') }, 'NonFiniteResult', /overflows F16/);
  await fs.rm(root, { recursive: true, force: true });
});

test('existing output is refused unless forced; output may not replace an input', async () => {
  const { root, base, adapter, out } = await setup();
  await fs.mkdir(out);
  await fs.writeFile(path.join(out, 'keep.txt'), 'x');
  await assert.rejects(mergeAdapters({ base, adapters: [{ dir: adapter }], out }), (e: unknown) => (e as MergeError).kind === 'OutputExists');
  assert.equal(await fs.readFile(path.join(out, 'keep.txt'), 'utf8'), 'x');
  await mergeAdapters({ base, adapters: [{ dir: adapter }], out, force: true });
  assert.equal(await exists(path.join(out, 'keep.txt')), false);
  assert.equal(await exists(path.join(out, 'model.safetensors')), true);
  for (const bad of [base, adapter, root]) {
    await assert.rejects(mergeAdapters({ base, adapters: [{ dir: adapter }], out: bad, force: true }), (e: unknown) => (e as MergeError).kind === 'OutputIsInput');
  }
  // An input whose folder name starts with '..' is still inside the output folder that a forced merge would replace.
  const dotted = path.join(out, '..ad');
  await fs.cp(adapter, dotted, { recursive: true });
  await assert.rejects(mergeAdapters({ base, adapters: [{ dir: dotted }], out, force: true }), (e: unknown) => (e as MergeError).kind === 'OutputIsInput');
  assert.equal(await exists(path.join(dotted, 'adapter_config.json')), true);
  assert.deepEqual(await tempLeftovers(root), []);
  await fs.rm(root, { recursive: true, force: true });
});

test('cancel through the AbortSignal after the first tensor -> Cancelled, nothing written', async () => {
  const { root, base, adapter, out } = await setup();
  const ac = new AbortController();
  let events = 0;
  const opts: MergeOptions = { base, adapters: [{ dir: adapter }], out, signal: ac.signal, dtype: 'f16', onProgress: () => (events++, ac.abort()) };
  await expectFailure(root, opts, 'Cancelled');
  assert.equal(events, 1);
  await fs.rm(root, { recursive: true, force: true });
});

test('bad options: DoRA in a multi-adapter merge, density out of range, no adapters', async () => {
  const { root, base, adapter, out } = await setup();
  const dora = await writeTestAdapter(path.join(root, 'dora'), { r: 1, lora_alpha: 1, use_dora: true, target_modules: ['proj'] }, [
    loraModule(P, [1, 0], [1, 2], [1, 1], [2, 1], [1, 1]),
  ]);
  await expectFailure(root, { base, adapters: [{ dir: adapter }, { dir: dora }], out }, 'UnsupportedCombination');
  await expectFailure(root, { base, adapters: [{ dir: adapter }, { dir: adapter }], out, method: 'ties', density: 1.5 }, 'BadOption');
  await expectFailure(root, { base, adapters: [], out }, 'BadOption');
  await fs.rm(root, { recursive: true, force: true });
});
