import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { parseTargets, trainConfigFromFlags, formatProgress } from '../../src/cli/train';
import { UsageError } from '../../src/cli/command';

test('mora train flags become a validated TrainConfig', () => {
  const { config } = trainConfigFromFlags([
    '--model', 'm', '--data', 'uuid:100', '--out', 'o', '--method', 'lora', '--r', '4', '--targets', 'q_proj,v_proj',
    '--steps', '20', '--lr', '1e-3', '--batch', '2', '--grad-accum', '3', '--seq', '64', '--warmup', '5',
    '--schedule', 'linear', '--weight-decay', '0.01', '--clip', '0', '--seed', '7', '--checkpoint-every', '10',
    '--backend', 'cpu', '--skip-bad-lines',
  ]);
  assert.deepEqual(
    { ...config },
    {
      model: path.resolve('m'), data: 'uuid:100', out: path.resolve('o'), method: 'lora', moraType: 6, r: 4, alpha: 16,
      targets: ['q_proj', 'v_proj'], steps: 20, lr: 1e-3, warmupSteps: 5, schedule: 'linear', weightDecay: 0.01, clip: 0,
      batch: 2, gradAccum: 3, seq: 64, seed: 7, checkpointEvery: 10, resume: undefined, backend: 'cpu', skipBadLines: true,
    },
  );
});

test('bad flags are UsageErrors naming the flag', () => {
  const base = ['--model', 'm', '--data', 'd.jsonl', '--out', 'o'];
  assert.throws(() => trainConfigFromFlags([...base, '--method', 'dora']), (e: Error) => e instanceof UsageError && /--method/.test(e.message));
  assert.throws(() => trainConfigFromFlags([...base, '--mora-type', '3']), /--mora-type must be 1 or 6/);
  assert.throws(() => trainConfigFromFlags([...base, '--steps', '0']), /--steps must be >= 1/);
  assert.throws(() => trainConfigFromFlags([...base, '--backend', 'tpu']), /--backend/);
  assert.throws(() => trainConfigFromFlags(['--data', 'uuid:3', '--out', 'o']), /--model/);
  assert.throws(() => trainConfigFromFlags([...base, '--bogus']), UsageError);
});

test('targets: comma lists, all-linear and regexes keep PEFT semantics', () => {
  assert.deepEqual(parseTargets('q_proj, v_proj'), ['q_proj', 'v_proj']);
  assert.equal(parseTargets('all-linear'), 'all-linear');
  assert.equal(parseTargets('.*\\.(q|v)_proj'), '.*\\.(q|v)_proj');
});

test('progress lines carry step, loss, lr, tokens/s, ETA, backend and memory', () => {
  const line = formatProgress({ type: 'train/progress', step: 5, totalSteps: 100, loss: 1.23456, lr: 2e-4, tokensPerSec: 1234.4, etaSec: 95, backend: 'wasm', memoryMb: 321 });
  assert.equal(line, 'step 5/100  loss 1.2346  lr 2.00e-4  1234 tok/s  eta 1m35s  wasm  321 MB');
});
