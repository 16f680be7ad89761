// `mora extract`: exit 0 with a per-module table and a summary line, exit 2 with one line on stderr otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { readAdapter } from '../../src/adapters';
import { ModelWeights } from '../../src/safetensors';
import { exists, tempDir, writeBase, type TensorSpec } from './mergeTestUtil';
import { runCli as cli } from './cliTestUtil';

const Q = 'model.layers.0.self_attn.q_proj';
const V = 'model.layers.0.self_attn.v_proj';
const seq = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

/** q_proj [6, 8] gets a rank-1 update 0.5·u·vᵀ, v_proj [4, 8] none (it is "unchanged"). */
async function setup() {
  const root = await tempDir('mora-extract-');
  const u = seq(6, (i) => i - 2.5);
  const v = seq(8, (j) => Math.cos(j));
  const model = (dq: number): TensorSpec[] => [
    { name: `${Q}.weight`, dtype: 'F32', shape: [6, 8], values: seq(48, (k) => Math.sin(k) + dq * u[Math.floor(k / 8)] * v[k % 8]) },
    { name: `${V}.weight`, dtype: 'F32', shape: [4, 8], values: seq(32, (k) => k / 32) },
  ];
  return { root, base: await writeBase(path.join(root, 'base'), model(0)), tuned: await writeBase(path.join(root, 'tuned'), model(0.5)) };
}

test('mora extract: LoRA table and summary; a rank-1 ΔW comes back at r = 1', async () => {
  const { root, base, tuned } = await setup();
  const out = path.join(root, 'ex');
  const r = await cli(['extract', '--base', base, '--tuned', tuned, '--out', out, '--r', '1', '--quiet']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0], /^module\s+shape\s+r\s+rel\. error$/);
  const row = lines[1].split(/\s{2,}/);
  assert.deepEqual(row.slice(0, 3), [Q, '[6, 8]', '1']);
  // 0.5·u·vᵀ is exactly rank 1: only the float rounding of the weights and factors remains.
  assert.ok(Number(row[3]) <= 1e-6, lines[1]);
  assert.equal(lines.length, 3);
  assert.match(lines[2], /^extracted 1 module \(LoRA r=1, F32\) from .*tuned into .*ex: overall relative error \S+, 1 unchanged left out, \d+\.\d s$/);
  const ad = await readAdapter(out);
  assert.deepEqual(ad.config.target_modules, ['q_proj']);
  assert.equal(ad.config.lora_alpha, 1);
  await fs.rm(root, { recursive: true, force: true });
});

test('mora extract: MoRA type 1 in bf16 with a target list, progress on stderr', async () => {
  const { root, base, tuned } = await setup();
  const out = path.join(root, 'mora');
  const r = await cli(['extract', '--base', base, '--tuned', tuned, '--out', out, '--method', 'mora', '--mora-type', '1', '--r', '2', '--dtype', 'bf16', '--targets', 'q_proj,v_proj']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /extract: 2\/2 tensors/);
  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0], /^module\s+shape\s+r̂\s+rel\. error$/);
  // r̂ = floor(sqrt((8 + 6)·2) + 0.5) = 5 for q_proj [6, 8].
  assert.deepEqual(lines[1].split(/\s{2,}/).slice(0, 3), [Q, '[6, 8]', '5']);
  assert.match(lines[2], /^extracted 1 module \(MoRA type 1, r=2, BF16\)/);
  const ad = await readAdapter(out);
  assert.equal(ad.config.use_mora, true);
  assert.equal(ad.config.mora_type, 1);
  const w = await ModelWeights.open(out);
  assert.deepEqual(w.names().map((n) => w.info(n).dtype), ['BF16', 'BF16']);
  await w.close();
  await fs.rm(root, { recursive: true, force: true });
});

test('mora extract: bad input exits 2 with one line and writes nothing', async () => {
  const { root, base, tuned } = await setup();
  const out = path.join(root, 'out');
  const same = path.join(root, 'same');
  await fs.cp(base, same, { recursive: true });
  const cases: [string[], RegExp][] = [
    [['--base', base, '--out', out], /^mora extract: usage: missing required flag --tuned/],
    [['--base', base, '--tuned', tuned], /^mora extract: usage: missing required flag --out/],
    [['--base', base, '--tuned', tuned, '--out', out, '--method', 'dora'], /^mora extract: usage: --method must be lora or mora/],
    [['--base', base, '--tuned', tuned, '--out', out, '--method', 'mora', '--mora-type', '3'], /--mora-type must be 1 or 6/],
    [['--base', base, '--tuned', tuned, '--out', out, '--mora-type', '6'], /--mora-type applies to --method mora only/],
    [['--base', base, '--tuned', tuned, '--out', out, '--dtype', 'f8'], /--dtype must be f32, bf16 or f16/],
    [['--base', base, '--tuned', tuned, '--out', out, '--r', '0'], /--r must be >= 1/],
    [['--base', base, '--tuned', tuned, '--out', out, '--r', '5'], /^mora extract: ExtractError BadRank: r=5 exceeds min\(out, in\) = 4/],
    [['--base', base, '--tuned', tuned, '--out', out, '--targets', ','], /--targets expects module names/],
    [['--base', base, '--tuned', tuned, '--out', out, '--targets', 'o_proj'], /^mora extract: ExtractError NoTargets: /],
    [['--base', base, '--tuned', same, '--out', out, '--r', '1'], /^mora extract: ExtractError NoDifference: /],
    [['--base', base, '--tuned', tuned, '--out', tuned, '--force'], /^mora extract: ExtractError OutputIsInput: /],
    [['--base', path.join(root, 'nope'), '--tuned', tuned, '--out', out], /^mora extract: ExtractError InvalidModel: /],
    [['--base', base, '--tuned', tuned, '--out', out, '--bogus'], /^mora extract: usage: Unknown option/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(['extract', ...args, '--quiet']);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, re);
    assert.equal(r.err.trimEnd().split('\n').length, 1, `one line: ${r.err}`);
    assert.equal(r.out, '');
    assert.equal(await exists(out), false);
  }
  await fs.mkdir(out);
  const r = await cli(['extract', '--base', base, '--tuned', tuned, '--out', out, '--quiet', '--r', '1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^mora extract: ExtractError OutputExists: /);
  assert.deepEqual(await fs.readdir(out), []);
  const help = await cli(['--help']);
  assert.match(help.out, /^\s+extract\s+extract the ΔW of a fine-tuned or merged model/m);
  await fs.rm(root, { recursive: true, force: true });
});
