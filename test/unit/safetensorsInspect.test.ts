import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSafetensors } from '../../src/safetensors';
import { runCli } from './cliTestUtil';

test('mora inspect prints tensors, counts, parameters and metadata', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mora-insp-'));
  const file = path.join(dir, 'model.safetensors');
  await writeSafetensors(file, [
    { name: 'embed.weight', dtype: 'BF16', shape: [10, 4], data: new Uint8Array(80) },
    { name: 'norm', dtype: 'F32', shape: [4], data: new Uint8Array(16) },
    { name: 'step', dtype: 'I64', shape: [], data: new Uint8Array(8) },
  ], { source: 'test' });

  const text = await runCli(['inspect', file]);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /embed\.weight\s+BF16\s+\[10, 4\]\s+80/);
  assert.match(text.out, /step\s+I64\s+\[\]\s+8/);
  assert.match(text.out, /metadata: format="pt" source="test"/);
  assert.match(text.out, /3 tensors, 45 parameters \(I64: 1, F32: 4, BF16: 40\), 104 bytes of data/);

  const json = await runCli(['inspect', dir, '--json']);
  assert.equal(json.code, 0, json.err);
  const r = JSON.parse(json.out);
  assert.equal(r.tensorCount, 3);
  assert.equal(r.totalParams, 45);
  assert.equal(r.totalBytes, 104);
  assert.deepEqual(r.shards[0].metadata, { format: 'pt', source: 'test' });
  assert.deepEqual(r.tensors.map((t: { name: string }) => t.name), ['step', 'norm', 'embed.weight']);
  assert.deepEqual(r.tensors[2], { name: 'embed.weight', dtype: 'BF16', shape: [10, 4], bytes: 80, params: 40, shard: file });

  // A broken file: one line on stderr, exit code 2, no stack trace.
  const bad = path.join(dir, 'bad.safetensors');
  await fs.writeFile(bad, new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 1]));
  const broken = await runCli(['inspect', bad]);
  assert.equal(broken.code, 2);
  assert.equal(broken.out, '');
  assert.match(broken.err, /^mora inspect: SafetensorsError MetadataIncompleteBuffer: .*bad\.safetensors.*\n$/);

  const missing = await runCli(['inspect', path.join(dir, 'nope')]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /^mora inspect: SafetensorsError NoWeights: /);
  const usage = await runCli(['inspect']);
  assert.equal(usage.code, 2);
  assert.match(usage.err, /^mora inspect: usage: /);
  const flag = await runCli(['inspect', file, '--bogus']);
  assert.equal(flag.code, 2);
  await fs.rm(dir, { recursive: true });
});
