import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { bytesToUnicode, loadTokenizer, makeByteLevelTokenizer, TokenizerError } from '../../src/model/tokenizer';

async function tokenizerDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mora-tok-'));
  const { tokenizer, config } = makeByteLevelTokenizer();
  await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  await writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

test('bytesToUnicode is GPT-2 mapping: printable bytes map to themselves, space to Ġ, newline to Ċ', () => {
  const m = bytesToUnicode();
  assert.equal(m[65], 'A');
  assert.equal(m[32], 'Ġ');
  assert.equal(m[10], 'Ċ');
  assert.equal(m[0], 'Ā');
  assert.equal(new Set(m).size, 256);
});

test('byte-level tokenizer: one id per UTF-8 byte, specials after 255, exact round trip', async () => {
  const dir = await tokenizerDir();
  try {
    const tok = await loadTokenizer(dir);
    assert.deepEqual(tok.encode('ab-9 '), [97, 98, 45, 57, 32]);
    assert.deepEqual(tok.encode('é'), [0xc3, 0xa9]);
    assert.equal(tok.eosId, 256);
    assert.equal(tok.padId, 257);
    assert.equal(tok.bosId, 258);
    assert.equal(tok.vocabSize, 259);
    const text = 'key 3f2b6c1e-0d4a-4b8e-9a7f-2c5d8e1f0a3b\nvalue: ünïcode ✓';
    assert.equal(tok.decode(tok.encode(text)), text);
    // Special tokens are dropped on decode so generated text ends cleanly at eos.
    assert.equal(tok.decode([104, 105, 256]), 'hi');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadTokenizer: missing and malformed tokenizer.json give named errors', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mora-tok-'));
  try {
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof TokenizerError && e.kind === 'TokenizerMissing');
    await writeFile(path.join(dir, 'tokenizer.json'), '{"model": ');
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof TokenizerError && e.kind === 'TokenizerInvalid');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
