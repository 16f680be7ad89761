import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataError, IGNORE, instructionPrompt, loadRecords, parseJsonl, tokenizeRecords, type TokenizerLike } from '../../src/trainer/data';
import { BatchSampler } from '../../src/trainer/sampler';
import { prepareData } from '../../src/trainer/setup';
import { trainDefaults } from '../../src/model/trainingConfig';

// A character tokenizer: id = char code + 3 (0 pad, 1 bos, 2 eos), so expected ids can be written by hand.
const tok: TokenizerLike & { encode(s: string): number[] } = {
  encode: (s) => Array.from(s, (ch) => ch.charCodeAt(0) + 3),
  padId: 0,
  bosId: 1,
  eosId: 2,
};
const c = (s: string) => s.charCodeAt(0) + 3;

test('JSONL: text, prompt/completion and instruction/input/output records', () => {
  const text = [
    '{"text":"hi"}',
    '',
    '{"prompt":"Q:","completion":"A"}',
    '{"instruction":"Add","input":"1 1","output":"2"}',
    '{"instruction":"Say","output":"x"}',
  ].join('\n');
  const { records, skipped } = parseJsonl(text, 'd.jsonl', false);
  assert.equal(skipped, 0);
  assert.deepEqual(records.map((r) => [r.prompt, r.completion, r.source]), [
    ['', 'hi', 'd.jsonl:1'],
    ['Q:', 'A', 'd.jsonl:3'],
    [instructionPrompt('Add', '1 1'), '2', 'd.jsonl:4'],
    ['### Instruction:\nSay\n\n### Response:\n', 'x', 'd.jsonl:5'],
  ]);
});

test('JSONL: a bad line is a DataError naming file:line, or skipped with a count', () => {
  const text = '{"text":"ok"}\n{"text": 5}\n{not json\n[1]\n{"prompt":"p"}\n{"foo":1}\n';
  assert.throws(
    () => parseJsonl(text, 'train.jsonl', false),
    (e: unknown) => e instanceof DataError && e.name === 'DataError' && e.kind === 'bad-line' && e.message.startsWith('train.jsonl:2: "text" must be a string'),
  );
  assert.throws(() => parseJsonl('{"text":"a"}\n{not json', 'x.jsonl', false), /x\.jsonl:2: invalid JSON/);
  const r = parseJsonl(text, 'train.jsonl', true);
  assert.equal(r.records.length, 1);
  assert.equal(r.skipped, 5);
  assert.match(r.skippedReasons[3], /^train\.jsonl:5: "prompt" and "completion"/);
  assert.match(r.skippedReasons[4], /^train\.jsonl:6: no "text"/);
});

test('loadRecords: files, uuid:N, empty and missing input', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mora-data-'));
  try {
    writeFileSync(path.join(dir, 'a.jsonl'), '{"text":"x"}\n');
    writeFileSync(path.join(dir, 'b.txt'), 'plain text\n');
    writeFileSync(path.join(dir, 'e.jsonl'), '\n\n');
    assert.equal((await loadRecords(path.join(dir, 'a.jsonl'), { skipBadLines: false })).records.length, 1);
    const t = await loadRecords(path.join(dir, 'b.txt'), { skipBadLines: false });
    assert.deepEqual([t.records[0].completion, t.records[0].chunkable], ['plain text\n', true]);
    assert.equal((await loadRecords('uuid:7', { skipBadLines: false })).records.length, 7);
    await assert.rejects(loadRecords(path.join(dir, 'e.jsonl'), { skipBadLines: false }), (e: DataError) => e.kind === 'empty');
    await assert.rejects(loadRecords(path.join(dir, 'nope.jsonl'), { skipBadLines: false }), (e: DataError) => e.kind === 'not-found');
    await assert.rejects(loadRecords('uuid:0', { skipBadLines: false }), (e: DataError) => e.kind === 'unsupported-format' && /positive pair count/.test(e.message));
    writeFileSync(path.join(dir, 'c.csv'), 'a,b');
    await assert.rejects(loadRecords(path.join(dir, 'c.csv'), { skipBadLines: false }), (e: DataError) => e.kind === 'unsupported-format');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenization masks the prompt: labels are shifted targets of completion tokens only', () => {
  const { examples } = tokenizeRecords([{ prompt: 'ab', completion: 'cd', source: 't' }], tok, 16);
  // tokens: [bos a b c d eos]; ids drop the last token; labels[t] = tokens[t+1] where that token is completion.
  assert.deepEqual(examples[0].ids, [1, c('a'), c('b'), c('c'), c('d')]);
  assert.deepEqual(examples[0].labels, [IGNORE, IGNORE, c('c'), c('d'), 2]);
});

test('tokenization: long plain text is chunked into windows, long completions are truncated and counted', () => {
  const { examples } = tokenizeRecords([{ prompt: '', completion: 'abcdefg', source: 't', chunkable: true }], tok, 4);
  // tokens [bos a b c d e f g eos] (9) → windows of 4 positions starting at 0 and 4; the next start, 8, has no target left.
  assert.deepEqual(examples.map((e) => e.ids.length), [4, 4]);
  assert.deepEqual(examples[1].ids, [c('d'), c('e'), c('f'), c('g')]);
  assert.deepEqual(examples[1].labels, [c('e'), c('f'), c('g'), 2]);
  const r = tokenizeRecords([{ prompt: 'p', completion: 'abcdefgh', source: 't' }, { prompt: 'long prompt', completion: 'z', source: 't' }], tok, 4);
  assert.equal(r.stats.truncated, 2);
  assert.equal(r.stats.dropped, 1);
  assert.equal(r.examples.length, 1);
});

test('BatchSampler: padded fixed-shape batches, every example once per epoch, a pure function of (seed, g)', () => {
  const { examples } = tokenizeRecords(['a', 'bb', 'ccc', 'dddd', 'e'].map((s) => ({ prompt: '', completion: s, source: 't' })), tok, 32);
  const s = new BatchSampler(examples, 2, 7, 0, 32);
  assert.equal(s.seqLen, 5);
  const b = s.batch(0);
  assert.equal(b.ids.length, 10);
  const epoch0 = [...s.indices(0), ...s.indices(1), s.indices(2)[0]];
  assert.deepEqual([...epoch0].sort(), [0, 1, 2, 3, 4]);
  const again = new BatchSampler(examples, 2, 7, 0, 32);
  assert.deepEqual(again.indices(5), s.indices(5));
  assert.deepEqual(Array.from(again.batch(3).labels), Array.from(s.batch(3).labels));
  assert.notDeepEqual([0, 1, 2, 3, 4, 5, 6].map((g) => new BatchSampler(examples, 2, 8, 0, 32).indices(g)), [0, 1, 2, 3, 4, 5, 6].map((g) => s.indices(g)));
  // Padding positions carry the pad id and no loss.
  const row = Array.from(b.labels.slice(0, 5));
  const len = examples[s.indices(0)[0]].ids.length;
  assert.deepEqual(row.slice(len), new Array(5 - len).fill(IGNORE));
});

test('prepareData: records whose completion all lies beyond --seq are a DataError, not a bare Error', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mora-data-'));
  try {
    const file = path.join(dir, 'long.jsonl');
    writeFileSync(file, '{"prompt":"a long prompt","completion":"z"}\n');
    const c = { ...trainDefaults, model: 'm', out: 'o', data: file, seq: 4 };
    await assert.rejects(prepareData(c, tok), (e: unknown) => e instanceof DataError && e.kind === 'empty' && /--seq 4/.test(e.message));
    const ok = await prepareData({ ...c, seq: 32 }, tok);
    assert.equal(ok.sampler.seqLen, 1 + 'a long prompt'.length + 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
