import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, clipGradients, globalNorm, OptimizerError } from '../../src/trainer/optimizer';
import { learningRateAt, type ScheduleConfig } from '../../src/trainer/schedule';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('AdamW matches a hand-computed 2-step update with decoupled weight decay and bias correction', () => {
  // Worked by hand (float64): p = [1, -2], g1 = [0.5, -1], g2 = [0.1, 0.3], lr 0.1, wd 0.01, β = (0.9, 0.999), eps 1e-8.
  // Step 1: m̂ = g, v̂ = g², so each weight moves by lr·sign(g) after decay: 0.999 − 0.1 = 0.899.
  const opt = new AdamW([2], { weightDecay: 0.01 });
  const p = [new Float32Array([1, -2])];
  opt.update(p, [new Float32Array([0.5, -1])], 0.1);
  close(p[0][0], 0.899000002, 1e-6, 'p0 after step 1');
  close(p[0][1], -1.898000001, 1e-6, 'p1 after step 1');
  // Step 2: m = [0.055, -0.06], v = [0.00025975, 0.001089], bc1 = 0.19, bc2 = 0.001999.
  opt.update(p, [new Float32Array([0.1, 0.3])], 0.1);
  close(p[0][0], 0.8177969063826518, 1e-6, 'p0 after step 2');
  close(p[0][1], -1.8533171424282264, 1e-6, 'p1 after step 2');
  const s = opt.exportState();
  assert.equal(s.step, 2);
  close(s.m[0][0], 0.055, 1e-8, 'm0');
  close(s.v[0][1], 0.001089, 1e-9, 'v1');
});

test('AdamW state export/import continues bit-identically', () => {
  const grads = [0.3, -0.7, 0.2, 0.9].map((g) => [new Float32Array([g, -g, 2 * g])]);
  const a = new AdamW([3], { weightDecay: 0.1 });
  const pa = [new Float32Array([0.5, 0.1, -0.3])];
  for (const g of grads) a.update(pa, g, 0.01);
  const b1 = new AdamW([3], { weightDecay: 0.1 });
  const pb = [new Float32Array([0.5, 0.1, -0.3])];
  b1.update(pb, grads[0], 0.01);
  b1.update(pb, grads[1], 0.01);
  const b2 = new AdamW([3], { weightDecay: 0.1 });
  b2.importState(b1.exportState());
  b2.update(pb, grads[2], 0.01);
  b2.update(pb, grads[3], 0.01);
  assert.deepEqual(Array.from(pb[0]), Array.from(pa[0]));
  assert.throws(() => new AdamW([4]).importState(b1.exportState()), OptimizerError);
});

test('gradient clipping scales to the max global norm and reports the norm before clipping', () => {
  const g = [new Float32Array([3, 0]), new Float32Array([4])];
  assert.equal(clipGradients(g, 1), 5);
  close(globalNorm(g), 1, 1e-6, 'clipped norm');
  close(g[0][0], 0.6, 1e-6, 'g0');
  const h = [new Float32Array([0.3, 0.4])];
  clipGradients(h, 1);
  assert.deepEqual(Array.from(h[0]), [Math.fround(0.3), Math.fround(0.4)]);
  const k = [new Float32Array([30, 40])];
  clipGradients(k, 0);
  assert.equal(k[0][1], 40);
});

test('schedules: warm-up then cosine / linear / constant at known steps', () => {
  const c: ScheduleConfig = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, schedule: 'cosine' };
  const at = (k: number, s: ScheduleConfig = c) => learningRateAt(k, s);
  close(at(0), 1e-4, 1e-12, 'warm-up k=0');
  close(at(4), 5e-4, 1e-12, 'warm-up k=4');
  close(at(9), 1e-3, 1e-12, 'end of warm-up');
  close(at(10), 1e-3, 1e-12, 'cosine start');
  close(at(60), 5e-4, 1e-12, 'cosine midpoint');
  close(at(109), 2.467198171342e-7, 1e-15, 'cosine last step');
  const lin = { ...c, schedule: 'linear' as const };
  close(at(60, lin), 5e-4, 1e-12, 'linear midpoint');
  close(at(85, lin), 2.5e-4, 1e-12, 'linear 3/4');
  const con = { ...c, schedule: 'constant' as const, warmupSteps: 0 };
  close(at(0, con), 1e-3, 0, 'constant');
  close(at(109, con), 1e-3, 0, 'constant end');
  close(at(0, { ...c, warmupSteps: 0 }), 1e-3, 0, 'no warm-up starts at peak');
});
