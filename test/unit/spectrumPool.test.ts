// The worker-thread pool must hand back exactly what the inline computation gives, for every job, in job order,
// however many jobs each worker has queued; a bad job fails alone with its named error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moraSingularValues } from '../../src/spectrum/moraSpectrum';
import { MoraSpectrumPool, moraSpectraParallel, type MoraJob } from '../../src/spectrum/parallelKernel';
import { mulberry, randn } from '../../src/spectrum/random';

function job(rHat: number, inF: number, outF: number, type: 1 | 6, seed: number): MoraJob {
  const rnd = mulberry(seed);
  return { M: Float32Array.from({ length: rHat * rHat }, () => 0.02 * randn(rnd)), rHat, inF, outF, type };
}

// More jobs than two workers can hold queued (two each), of mixed sizes so replies arrive out of order.
const JOBS: MoraJob[] = [
  job(16, 200, 640, 6, 1),
  job(8, 32, 32, 6, 2),
  job(24, 300, 300, 1, 3),
  job(12, 100, 37, 6, 4),
  job(8, 30, 20, 1, 5),
  job(20, 410, 150, 6, 6),
  job(8, 5, 13, 1, 7),
  job(10, 64, 64, 6, 8),
  job(14, 90, 250, 1, 9),
];

test('pool on 2 worker threads: σ, method, blocks and tolerance bit-identical to inline, in job order', { timeout: 60_000 }, async () => {
  const got = await moraSpectraParallel(JOBS, 2);
  assert.equal(got.length, JOBS.length);
  JOBS.forEach((j, i) => {
    const want = moraSingularValues(j.M, j.rHat, j.inF, j.outF, j.type);
    assert.deepEqual(Array.from(got[i].sigma), Array.from(want.sigma), `job ${i}`);
    assert.equal(got[i].method, want.method);
    assert.equal(got[i].blocks, want.blocks);
    assert.equal(got[i].tolerance, want.tolerance);
  });
});

test('pool: a bad job rejects with its named error; the jobs around it still resolve', { timeout: 60_000 }, async () => {
  const bad: MoraJob = { M: new Float32Array(10), rHat: 4, inF: 16, outF: 16, type: 6 };
  const jobs = [JOBS[0], bad, JOBS[3], JOBS[1], JOBS[4]];
  const pool = new MoraSpectrumPool();
  try {
    const ps = pool.run(jobs, 2);
    await assert.rejects(ps[1], (e: Error & { kind?: string }) => e.name === 'LinalgError' && e.kind === 'BadShape');
    for (const i of [0, 2, 3, 4]) {
      const want = moraSingularValues(jobs[i].M, jobs[i].rHat, jobs[i].inF, jobs[i].outF, jobs[i].type);
      assert.deepEqual(Array.from((await ps[i]).sigma), Array.from(want.sigma), `job ${i}`);
    }
  } finally {
    pool.close();
  }
});

test('pool: prestarted workers take the jobs; an inline run stops them', { timeout: 60_000 }, async () => {
  const pool = new MoraSpectrumPool();
  try {
    pool.prestart(2);
    assert.equal(pool.threadCount, 2);
    const got = await Promise.all(pool.run(JOBS, 2));
    assert.equal(pool.threadCount, 2, 'the prestarted workers, not new ones');
    JOBS.forEach((j, i) => assert.deepEqual(Array.from(got[i].sigma), Array.from(moraSingularValues(j.M, j.rHat, j.inF, j.outF, j.type).sigma)));
  } finally {
    pool.close();
  }
  const inline = new MoraSpectrumPool();
  try {
    inline.prestart(2);
    const got = await Promise.all(inline.run(JOBS.slice(0, 3), 0));
    assert.equal(inline.threadCount, 0, 'inline work needs no threads');
    assert.deepEqual(Array.from(got[2].sigma), Array.from(moraSingularValues(JOBS[2].M, JOBS[2].rHat, JOBS[2].inF, JOBS[2].outF, JOBS[2].type).sigma));
  } finally {
    inline.close();
  }
  assert.equal(MoraSpectrumPool.prestartThreads(1000), 0, 'a small adapter file starts no threads');
});
