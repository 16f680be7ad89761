// `mora merge`: exit 0 with a summary on success, exit 2 with one line on stderr otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseAdapterSpec } from '../../src/cli/merge';
import { exists, loraModule, readAll, tempDir, tempLeftovers, writeBase, writeTestAdapter } from './mergeTestUtil';
import { runCli as cli } from './cliTestUtil';

const P = 'model.layers.0.mlp.proj';

async function setup() {
  const root = await tempDir();
  const base = await writeBase(path.join(root, 'base'), [{ name: `${P}.weight`, dtype: 'F32', shape: [1, 2], values: [1, 2] }]);
  const mk = (dir: string, a: number[]) =>
    writeTestAdapter(path.join(root, dir), { r: 1, lora_alpha: 1, target_modules: ['proj'] }, [loraModule(P, a, [1, 2], [1], [1, 1])]);
  return { root, base, a1: await mk('a1', [1, 0]), a2: await mk('a2', [0, 4]) };
}

test('parseAdapterSpec: optional numeric weight after the last colon', () => {
  assert.deepEqual(parseAdapterSpec('runs/a'), { dir: 'runs/a' });
  assert.deepEqual(parseAdapterSpec('runs/a:0.5'), { dir: 'runs/a', weight: 0.5 });
  assert.deepEqual(parseAdapterSpec('C:\\runs\\a'), { dir: 'C:\\runs\\a' });
  assert.deepEqual(parseAdapterSpec('C:\\runs\\a:-1e-1'), { dir: 'C:\\runs\\a', weight: -0.1 });
});

test('mora merge: weighted linear merge of two adapters, default output name next to the adapter', async () => {
  const { root, base, a1, a2 } = await setup();
  const r = await cli(['merge', '--base', base, '--adapter', `${a1}:2`, '--adapter', `${a2}:0.5`, '--quiet']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  const out = path.join(root, 'base-merged-a1+a2');
  assert.match(r.out, /merged 2 adapters into .*base-merged-a1\+a2: 1\/1 tensors changed, 1 shard/);
  // [1, 2] + 2·[1, 0] + 0.5·[0, 4] = [3, 4]
  assert.deepEqual(Array.from((await readAll(out)).get(`${P}.weight`)!), [3, 4]);
  // TIES at density .5 keeps one entry of each: [1, 0] and [0, 4]; no conflicts -> [1·1, 1·4] (weights 1)
  const tout = path.join(root, 'ties');
  const t = await cli(['merge', '--base', base, '--adapter', a1, '--adapter', a2, '--method', 'ties', '--density', '0.5', '--out', tout]);
  assert.equal(t.code, 0, t.err);
  assert.match(t.err, /merge: 1\/1 tensors/); // progress on stderr
  assert.deepEqual(Array.from((await readAll(tout)).get(`${P}.weight`)!), [2, 6]);
  await fs.rm(root, { recursive: true, force: true });
});

test('mora merge: bad input exits 2 with one line and writes nothing', async () => {
  const { root, base, a1 } = await setup();
  const out = path.join(root, 'out');
  const cases: [string[], RegExp][] = [
    [['--base', base, '--adapter', a1, '--out', out, '--dtype', 'f8'], /^mora merge: usage: --dtype must be/],
    [['--base', base, '--out', out], /^mora merge: usage: missing required flag --adapter/],
    [['--base', base, '--adapter', a1, '--out', out, '--density', '0.5'], /--density applies to --method ties only/],
    [['--base', base, '--adapter', a1, '--out', out, '--method', 'ties', '--density', '2'], /--density must be <= 1/],
    [['--base', path.join(root, 'nope'), '--adapter', a1, '--out', out], /^mora merge: MergeError InvalidBase: /],
    [['--base', base, '--adapter', path.join(root, 'nope'), '--out', out], /^mora merge: MergeError InvalidAdapter: /],
    [['--base', base, '--adapter', a1, '--out', base, '--force'], /^mora merge: MergeError OutputIsInput: /],
    [['--base', base, '--adapter', a1, '--out', out, '--bogus'], /^mora merge: usage: Unknown option/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(['merge', ...args, '--quiet']);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, re);
    assert.equal(r.err.trimEnd().split('\n').length, 1, `one line: ${r.err}`);
    assert.equal(await exists(out), false);
  }
  assert.deepEqual(await tempLeftovers(root), []);
  await fs.rm(root, { recursive: true, force: true });
});
