// Bad inputs to extractAdapter: a named ExtractError of the right kind, and nothing written (no output folder, no
// temp leftovers next to it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { extractAdapter, type ExtractOptions } from '../../src/adapters/extract';
import { ExtractError, type ExtractErrorKind } from '../../src/adapters/extractError';
import { writeSafetensors } from '../../src/safetensors';
import { exists, tempDir, tempLeftovers, writeBase, type TensorSpec } from './mergeTestUtil';

const Q = 'model.layers.0.self_attn.q_proj.weight';
const UP = 'model.layers.0.mlp.up_proj.weight';
const seq = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

/** A llama-ish model: embeddings, a norm, q_proj [4, 3] and up_proj [5, 3]; `bump` is added to the two projections. */
function tensors(bump = 0, qShape = [4, 3]): TensorSpec[] {
  const n = qShape[0] * qShape[1];
  return [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [6, 3], values: seq(18, (i) => i / 7) },
    { name: 'model.layers.0.input_layernorm.weight', dtype: 'F32', shape: [3], values: [1, 1, 1] },
    { name: Q, dtype: 'F32', shape: qShape, values: seq(n, (i) => Math.sin(i) + bump * (i % 3)) },
    { name: UP, dtype: 'F32', shape: [5, 3], values: seq(15, (i) => Math.cos(i) + bump * ((i % 3) - 1)) },
  ];
}

async function setup() {
  const root = await tempDir('mora-extract-');
  const base = await writeBase(path.join(root, 'base'), tensors());
  const tuned = await writeBase(path.join(root, 'tuned'), tensors(0.5));
  return { root, base, tuned, out: path.join(root, 'out') };
}

async function expectFailure(root: string, opts: ExtractOptions, kind: ExtractErrorKind, message?: RegExp): Promise<void> {
  const existed = await exists(opts.out);
  await assert.rejects(extractAdapter(opts), (e: unknown) => {
    assert.ok(e instanceof ExtractError, `expected an ExtractError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
  if (!existed) assert.equal(await exists(opts.out), false, `${kind}: ${opts.out} was written`);
  assert.deepEqual(await tempLeftovers(path.dirname(path.resolve(opts.out))), [], `${kind}: temp leftovers`);
}

test('options: method, MoRA type, dtype, targets and r are checked before anything is opened', async () => {
  const { root, base, tuned, out } = await setup();
  const o = { base, tuned, out };
  await expectFailure(root, { ...o, method: 'dora' as never }, 'BadOption', /method/);
  await expectFailure(root, { ...o, method: 'mora', moraType: 3 as never }, 'BadOption', /type/);
  await expectFailure(root, { ...o, dtype: 'F8' as never }, 'BadOption', /dtype/);
  await expectFailure(root, { ...o, targetModules: [] }, 'BadOption', /targets/);
  await expectFailure(root, { ...o, r: 0 }, 'BadRank', /≥ 1/);
  await expectFailure(root, { ...o, r: 1.5 }, 'BadRank');
  // up_proj [5, 3] and q_proj [4, 3]: r = 4 > min(out, in) = 3.
  await expectFailure(root, { ...o, r: 4 }, 'BadRank', /exceeds min\(out, in\) = 3 of model\.layers\.0\.mlp\.up_proj \[5, 3\]/);
  await expectFailure(root, { ...o, r: 4, method: 'mora' }, 'BadRank');
  await fs.rm(root, { recursive: true, force: true });
});

test('models: unreadable, other architecture, other shapes, missing targets, no targets', async () => {
  const { root, base, tuned, out } = await setup();
  await expectFailure(root, { base: path.join(root, 'nope'), tuned, out, r: 2 }, 'InvalidModel', /^base /);
  const broken = path.join(root, 'broken');
  await fs.mkdir(broken);
  await fs.writeFile(path.join(broken, 'model.safetensors'), Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
  await expectFailure(root, { base, tuned: broken, out, r: 2 }, 'InvalidModel', /^tuned /);
  const gpt2 = await writeBase(path.join(root, 'gpt2'), tensors(0.5), 'gpt2');
  await expectFailure(root, { base, tuned: gpt2, out, r: 2 }, 'ArchitectureMismatch', /model_type llama .* gpt2/);
  const wide = await writeBase(path.join(root, 'wide'), tensors(0.5, [4, 4]));
  await expectFailure(root, { base, tuned: wide, out, r: 2 }, 'ShapeMismatch', /q_proj\.weight: base \[4, 3\] vs tuned \[4, 4\]/);
  const fewer = await writeBase(path.join(root, 'fewer'), tensors(0.5).filter((t) => t.name !== UP));
  await expectFailure(root, { base, tuned: fewer, out, r: 2 }, 'MissingTarget', /up_proj\.weight \(only in base\)/);
  // Listed targets are matched like PEFT's target_modules; the embeddings are never an all-linear target.
  await expectFailure(root, { base, tuned, out, r: 2, targetModules: ['k_proj'] }, 'NoTargets');
  const embedOnly = (dir: string, bump: number) => writeBase(path.join(root, dir), tensors(bump).filter((t) => t.name.includes('embed')));
  await expectFailure(root, { base: await embedOnly('e0', 0), tuned: await embedOnly('e1', 1), out, r: 2 }, 'NoTargets');
  await fs.rm(root, { recursive: true, force: true });
});

test('identical models, non-finite ΔW and integer weights are refused', async () => {
  const { root, base, out } = await setup();
  const copy = await writeBase(path.join(root, 'copy'), tensors());
  await expectFailure(root, { base, tuned: copy, out, r: 2 }, 'NoDifference', /identical/);
  await expectFailure(root, { base, tuned: base, out, r: 2 }, 'NoDifference', /same model/);
  const inf = await writeBase(path.join(root, 'inf'), tensors(0.5).map((t) => (t.name === Q ? { ...t, values: t.values.map((v, i) => (i === 5 ? Infinity : v)) } : t)));
  await expectFailure(root, { base, tuned: inf, out, r: 2 }, 'NonFinite', /q_proj\.weight: ΔW has a non-finite value at index 5/);
  const ints = async (dir: string) => {
    await fs.mkdir(path.join(root, dir));
    await writeSafetensors(path.join(root, dir, 'model.safetensors'), [{ name: Q, dtype: 'I32', shape: [4, 3], data: new Uint8Array(48) }]);
    return path.join(root, dir);
  };
  await expectFailure(root, { base: await ints('i0'), tuned: await ints('i1'), out, r: 2 }, 'UnsupportedDtype', /I32/);
  await fs.rm(root, { recursive: true, force: true });
});

test('output: existing folder without force, an input or inside one; force replaces', async () => {
  const { root, base, tuned, out } = await setup();
  await fs.mkdir(out);
  await fs.writeFile(path.join(out, 'keep.txt'), 'mine');
  await expectFailure(root, { base, tuned, out, r: 2 }, 'OutputExists');
  assert.equal(await fs.readFile(path.join(out, 'keep.txt'), 'utf8'), 'mine');
  await expectFailure(root, { base, tuned, out: base, r: 2, force: true }, 'OutputIsInput', /replace the input/);
  await expectFailure(root, { base, tuned, out: root, r: 2, force: true }, 'OutputIsInput', /replace the input/);
  await expectFailure(root, { base, tuned, out: path.join(tuned, 'adapter'), r: 2 }, 'OutputIsInput', /inside the input/);
  const res = await extractAdapter({ base, tuned, out, r: 2, force: true });
  assert.equal(res.extracted, 2);
  assert.deepEqual((await fs.readdir(out)).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  await fs.rm(root, { recursive: true, force: true });
});

test('cancel: an aborted signal stops between tensors and writes nothing; progress counts tensors', async () => {
  const { root, base, tuned, out } = await setup();
  const pre = new AbortController();
  pre.abort();
  await expectFailure(root, { base, tuned, out, r: 2, signal: pre.signal }, 'Cancelled');
  const ac = new AbortController();
  const seen: string[] = [];
  await expectFailure(root, {
    base, tuned, out, r: 2, signal: ac.signal,
    onProgress: (p) => {
      seen.push(`${p.done}/${p.total} ${p.module}`);
      ac.abort();
    },
  }, 'Cancelled');
  assert.deepEqual(seen, ['1/2 model.layers.0.mlp.up_proj']);
  const all: string[] = [];
  await extractAdapter({ base, tuned, out, r: 2, onProgress: (p) => all.push(`${p.done}/${p.total} ${p.module}`) });
  assert.deepEqual(all, ['1/2 model.layers.0.mlp.up_proj', '2/2 model.layers.0.self_attn.q_proj']);
  await fs.rm(root, { recursive: true, force: true });
});
