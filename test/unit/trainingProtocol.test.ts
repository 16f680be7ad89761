import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHostToTraining, isTrainingToHost, type RunSummary } from '../../src/protocol/training';

const run: RunSummary = { id: 'run-1', model: '/m', data: 'uuid:8', method: 'mora', moraType: 6, r: 8, totalSteps: 10, out: '/o', backend: 'cpu', state: 'running' };
const point = { step: 3, loss: 2.5, lr: 1e-4, tokensPerSec: 900, etaSec: 12, memoryMb: 80 };

test('host → webview messages: valid ones pass, malformed ones are rejected', () => {
  assert.ok(isHostToTraining({ type: 'training/init', run, points: [point], logs: ['a'] }));
  assert.ok(isHostToTraining({ type: 'training/init', run: null, points: [], logs: [] }));
  assert.ok(isHostToTraining({ type: 'training/progress', point: { ...point, loss: NaN }, totalSteps: 10, backend: 'cpu' }));
  assert.ok(isHostToTraining({ type: 'training/status', run: { ...run, state: 'failed', message: 'x' } }));
  assert.ok(isHostToTraining({ type: 'training/log', line: 'step 1' }));
  assert.ok(!isHostToTraining({ type: 'training/init', run, points: [{ ...point, step: '3' }], logs: [] }));
  assert.ok(!isHostToTraining({ type: 'training/status', run: { ...run, state: 'paused' } }));
  assert.ok(!isHostToTraining({ type: 'training/progress', point, totalSteps: Infinity, backend: 'cpu' }));
  assert.ok(!isHostToTraining({ type: 'training/log', line: 3 }));
  assert.ok(!isHostToTraining({ type: 'spectrum/init' }));
  assert.ok(!isHostToTraining(null));
});

test('webview → host messages: only known types with a sane run id', () => {
  assert.ok(isTrainingToHost({ type: 'training/ready' }));
  for (const type of ['training/cancel', 'training/inspect', 'training/merge', 'training/reveal']) {
    assert.ok(isTrainingToHost({ type, runId: 'run-1' }), type);
    assert.ok(!isTrainingToHost({ type, runId: '' }), type);
    assert.ok(!isTrainingToHost({ type, runId: 'x'.repeat(500) }), type);
    assert.ok(!isTrainingToHost({ type }), type);
  }
  assert.ok(!isTrainingToHost({ type: 'training/exec', command: 'rm -rf /' }));
  assert.ok(!isTrainingToHost('training/ready'));
});
