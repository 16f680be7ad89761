// The extract worker (src/adapters/extractWorker.ts → dist/extractWorker.js) and its host client: runJob in-process
// gives the adapter extractAdapter gives, reports progress ending at the last tensor, stops on cancel and reports
// errors with their name and kind; the protocol validators refuse malformed messages; the client forks the real
// worker (through tsx, as the extension forks dist/extractWorker.js) and rebuilds ExtractErrors on this side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { extractAdapter } from '../../src/adapters/extract';
import { ExtractError } from '../../src/adapters/extractError';
import { runJob } from '../../src/adapters/extractWorker';
import { isExtractJob, isExtractWorkerToHost, isHostToExtractWorker, type ExtractJob, type ExtractWorkerToHost } from '../../src/protocol/extractWorker';
import { ExtractWorkerError, runExtractWorker, workerError } from '../../extension/extractWorkerClient';
import { exists, tempDir, tempLeftovers, writeBase, type TensorSpec } from './mergeTestUtil';

const seq = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

/** Three layers of q_proj [6, 5] and up_proj [7, 5]; `bump` changes the projections (a rank-1 ΔW per module). */
function tensors(bump: number): TensorSpec[] {
  return [0, 1, 2].flatMap((l): TensorSpec[] => [
    { name: `model.layers.${l}.self_attn.q_proj.weight`, dtype: 'F32', shape: [6, 5], values: seq(30, (i) => Math.sin(i + l) + bump * (i % 5) * ((i / 5) | 0)) },
    { name: `model.layers.${l}.mlp.up_proj.weight`, dtype: 'F32', shape: [7, 5], values: seq(35, (i) => Math.cos(i - l) - bump * ((i % 5) - 2)) },
  ]);
}

async function setup() {
  const root = await tempDir('mora-extract-worker-');
  const base = await writeBase(path.join(root, 'base'), tensors(0));
  const tuned = await writeBase(path.join(root, 'tuned'), tensors(0.25));
  return { root, base, tuned };
}

async function collect(job: ExtractJob, signal = new AbortController().signal, onPost?: (m: ExtractWorkerToHost) => void): Promise<ExtractWorkerToHost[]> {
  const seen: ExtractWorkerToHost[] = [];
  await runJob(job, signal, (m) => {
    assert.ok(isExtractWorkerToHost(JSON.parse(JSON.stringify(m))), `invalid after JSON: ${JSON.stringify(m)}`);
    seen.push(m);
    onPost?.(m);
  });
  return seen;
}

test('protocol: well-formed messages pass, malformed ones are refused', () => {
  const job = { base: '/b', tuned: '/t', out: '/o', method: 'mora', r: 8, moraType: 6, targets: ['q_proj'], dtype: 'BF16', force: true };
  assert.ok(isHostToExtractWorker({ type: 'extract/start', job }));
  assert.ok(isHostToExtractWorker({ type: 'extract/start', job: { base: '/b', tuned: '/t', out: '/o', targets: 'all-linear' } }));
  assert.ok(isHostToExtractWorker({ type: 'extract/cancel' }));
  for (const bad of [
    null, [], 'extract/cancel', { type: 'extract/cancel', now: true }, { type: 'analyze/start', job }, { type: 'extract/start' },
    { type: 'extract/start', job: { ...job, base: '' } }, { type: 'extract/start', job: { ...job, r: '8' } },
    { type: 'extract/start', job: { ...job, r: null } }, { type: 'extract/start', job: { ...job, targets: [1] } },
    { type: 'extract/start', job: { ...job, targets: 'some' } }, { type: 'extract/start', job: { ...job, force: 'yes' } },
  ]) assert.equal(isHostToExtractWorker(bad), false, JSON.stringify(bad));
  assert.ok(isExtractWorkerToHost({ type: 'extract/progress', done: 1, total: 2, module: 'm' }));
  assert.ok(isExtractWorkerToHost({ type: 'extract/error', name: 'ExtractError', kind: 'BadRank', message: 'x' }));
  for (const bad of [
    { type: 'extract/progress', done: '1', total: 2, module: 'm' }, { type: 'extract/error', name: 'E' },
    { type: 'extract/error', name: 'E', kind: 3, message: 'x' }, { type: 'extract/done', result: { out: '/o' } }, { type: 'extract/start', job },
  ]) assert.equal(isExtractWorkerToHost(bad), false, JSON.stringify(bad));
  assert.equal(isExtractJob({ ...job, moraType: Number.NaN }), false);
});

test('runJob: the adapter and result of extractAdapter, progress ending at the last tensor, done last', async () => {
  const { root, base, tuned } = await setup();
  const job: ExtractJob = { base, tuned, out: path.join(root, 'worker'), method: 'lora', r: 1 };
  const seen = await collect(job);
  const last = seen[seen.length - 1];
  assert.equal(last.type, 'extract/done');
  const progress = seen.filter((m) => m.type === 'extract/progress');
  assert.ok(progress.length >= 1 && progress.length <= 6);
  assert.deepEqual(progress[progress.length - 1], { type: 'extract/progress', done: 6, total: 6, module: 'model.layers.2.self_attn.q_proj' });
  const direct = await extractAdapter({ base, tuned, out: path.join(root, 'direct'), method: 'lora', r: 1 });
  if (last.type !== 'extract/done') return;
  assert.deepEqual({ ...last.result, seconds: 0, out: '' }, { ...direct, seconds: 0, out: '' });
  assert.equal(last.result.extracted, 6);
  // A rank-1 ΔW at r = 1: the fit is exact up to float32 factors.
  assert.ok(last.result.relError <= 1e-6, String(last.result.relError));
  for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
    assert.deepEqual(await fs.readFile(path.join(job.out, f)), await fs.readFile(path.join(direct.out, f)), f);
  }
  await fs.rm(root, { recursive: true, force: true });
});

test('runJob: cancel before the start and after the first tensor ends in ExtractError Cancelled, nothing written', async () => {
  const { root, base, tuned } = await setup();
  const out = path.join(root, 'out');
  const pre = new AbortController();
  pre.abort();
  const a = await collect({ base, tuned, out, r: 1 }, pre.signal);
  assert.deepEqual(a, [{ type: 'extract/error', name: 'ExtractError', kind: 'Cancelled', message: 'extraction cancelled' }]);
  const ac = new AbortController();
  const b = await collect({ base, tuned, out, r: 1 }, ac.signal, (m) => m.type === 'extract/progress' && ac.abort());
  assert.deepEqual(b.map((m) => m.type), ['extract/progress', 'extract/error']);
  assert.deepEqual(b[0], { type: 'extract/progress', done: 1, total: 6, module: 'model.layers.0.mlp.up_proj' });
  assert.equal(b[1].type === 'extract/error' && b[1].kind, 'Cancelled');
  assert.equal(await exists(out), false);
  assert.deepEqual(await tempLeftovers(root), []);
  await fs.rm(root, { recursive: true, force: true });
});

test('runJob: errors carry their name and kind (BadRank, InvalidModel, BadOption from a bad value)', async () => {
  const { root, base, tuned } = await setup();
  const out = path.join(root, 'out');
  const errorOf = async (job: ExtractJob) => {
    const seen = await collect(job);
    assert.equal(seen.length, 1);
    return seen[0];
  };
  const rank = await errorOf({ base, tuned, out, r: 6 });
  assert.equal(rank.type, 'extract/error');
  if (rank.type !== 'extract/error') return;
  assert.equal(rank.name, 'ExtractError');
  assert.equal(rank.kind, 'BadRank');
  assert.match(rank.message, /r=6 exceeds min\(out, in\) = 5/);
  const missing = await errorOf({ base: path.join(root, 'missing'), tuned, out });
  assert.equal(missing.type === 'extract/error' && `${missing.name} ${missing.kind}`, 'ExtractError InvalidModel');
  assert.match(missing.type === 'extract/error' ? missing.message : '', /^base .*missing/);
  const method = await errorOf({ base, tuned, out, method: 'dora' });
  assert.equal(method.type === 'extract/error' && `${method.name} ${method.kind}`, 'ExtractError BadOption');
  assert.equal(await exists(out), false);
  await fs.rm(root, { recursive: true, force: true });
});

// ---- the real worker process (forked through tsx, as the extension forks dist/extractWorker.js) ----
const worker = path.resolve(__dirname, '../../src/adapters/extractWorker.ts');
function token(cancelAfterMs?: number) {
  const listeners: (() => void)[] = [];
  const t = { isCancellationRequested: false, onCancellationRequested: (f: () => void) => (listeners.push(f), { dispose() {} }) };
  if (cancelAfterMs !== undefined) setTimeout(() => ((t.isCancellationRequested = true), listeners.forEach((f) => f())), cancelAfterMs);
  return t as never;
}

test('worker process: extracts, rebuilds ExtractErrors with their kind, cancels without writing', async () => {
  const { root, base, tuned } = await setup();
  const progress: number[] = [];
  const out = path.join(root, 'forked');
  const res = await runExtractWorker(worker, { base, tuned, out, method: 'mora', moraType: 6, r: 1 }, token(), (p) => progress.push(p.done));
  const direct = await extractAdapter({ base, tuned, out: path.join(root, 'direct'), method: 'mora', moraType: 6, r: 1 });
  // The result crossed the process boundary as JSON: fields that were undefined are absent.
  assert.deepEqual({ ...res, seconds: 0 }, JSON.parse(JSON.stringify({ ...direct, seconds: 0, out })));
  assert.equal(progress[progress.length - 1], 6);
  assert.deepEqual(await fs.readFile(path.join(out, 'adapter_model.safetensors')), await fs.readFile(path.join(direct.out, 'adapter_model.safetensors')));

  await assert.rejects(runExtractWorker(worker, { base, tuned, out: path.join(root, 'x'), r: 9 }, token(), () => {}),
    (e: unknown) => e instanceof ExtractError && e.name === 'ExtractError' && e.kind === 'BadRank' && /exceeds min/.test(e.message));
  await assert.rejects(runExtractWorker(worker, { base, tuned, out }, token(), () => {}), (e: unknown) => e instanceof ExtractError && e.kind === 'OutputExists');
  const cancelled = path.join(root, 'cancelled');
  await assert.rejects(runExtractWorker(worker, { base, tuned, out: cancelled }, token(0), () => {}), (e: unknown) => e instanceof ExtractError && e.kind === 'Cancelled');
  assert.equal(await exists(cancelled), false);
  // A malformed job never reaches the worker.
  await assert.rejects(runExtractWorker(worker, { base, tuned, out: '' }, token(), () => {}), (e: unknown) => e instanceof ExtractError && e.kind === 'BadOption');
  await fs.rm(root, { recursive: true, force: true });
});

test('workerError: ExtractErrors come back as ExtractError, anything else keeps its name and kind', () => {
  const e = workerError('ExtractError', 'NoDifference', 'same');
  assert.ok(e instanceof ExtractError && e.kind === 'NoDifference' && e.message === 'same');
  const s = workerError('SafetensorsError', 'ReadFailed', 'disk');
  assert.ok(s instanceof ExtractWorkerError && s.name === 'SafetensorsError' && s.kind === 'ReadFailed' && s.message === 'disk');
  // An unknown kind is not passed off as an ExtractError.
  assert.ok(workerError('ExtractError', 'Exploded', 'x') instanceof ExtractWorkerError);
});
