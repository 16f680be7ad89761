// Runs independent MoRA spectra on worker threads. Every module is its own dense eigen-problem of a few hundred
// rows, so they spread over cores with no coordination beyond a queue; the main thread only hands out jobs, which
// keeps it free for progress and cancel messages.
//
// The worker script is dist/spectrumKernelWorker.js next to a bundle (esbuild entry), or, when running from source
// through tsx (tests, benchmarks), parallelKernelWorker.ts loaded through tsx's require hook. Without either the
// pool runs the jobs inline, so callers never depend on threads being available.

import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { MoraType } from '../adapters';
import { moraSingularValues, type MoraSpectrum } from './moraSpectrum';

export interface MoraJob {
  /** [r̂, r̂] row-major; copied to the worker, never modified. */
  M: ArrayLike<number> & { length: number };
  rHat: number;
  inF: number;
  outF: number;
  type: MoraType;
}

/** What the worker posts back for job `id`. */
export type KernelReply =
  | { id: number; ok: true; sigma: Float64Array; method: MoraSpectrum['method']; blocks: number; tolerance: number }
  | { id: number; ok: false; name: string; kind?: string; message: string };

/** Adapter files at least this large start the pool's workers while they are still being read. */
const PRESTART_BYTES = 4 << 20;

/** Below this much estimated work (Σ r̂³) the thread start-up (tens of ms) costs more than it saves. */
const MIN_PARALLEL_WORK = 2e8;

/** Cores this process may use (os.availableParallelism where Node has it). */
function coreCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

function workerSource(): { script: string; evalCode: boolean } | null {
  if (__filename.endsWith('.ts')) {
    const file = path.join(__dirname, 'parallelKernelWorker.ts');
    return { script: `require('tsx/cjs'); require(${JSON.stringify(file)});`, evalCode: true };
  }
  const bundled = path.join(__dirname, 'spectrumKernelWorker.js');
  return existsSync(bundled) ? { script: bundled, evalCode: false } : null;
}

function rebuildError(r: Extract<KernelReply, { ok: false }>): Error {
  const err = new Error(r.message) as Error & { kind?: string };
  err.name = r.name;
  if (r.kind) err.kind = r.kind;
  return err;
}

/**
 * A pool of worker threads computing `moraSingularValues` for each job. Results come back as one promise per job
 * (in job order), so callers can consume them in order while later jobs still run.
 */
export class MoraSpectrumPool {
  private workers: Worker[] = [];
  private closed = false;
  /** A prestarted worker that failed before run() attached its handlers (it would otherwise be an uncaught error). */
  private startError: Error | null = null;

  /** Worker threads this pool holds now (prestarted or running). */
  get threadCount(): number {
    return this.workers.length;
  }

  /** Threads to use for `jobs`: 0 means inline (small work, one core, or no worker script). */
  static threadsFor(jobs: readonly MoraJob[], requested?: number): number {
    const cores = coreCount();
    const want = Math.min(requested ?? cores, cores, jobs.length);
    const work = jobs.reduce((s, j) => s + j.rHat ** 3, 0);
    if (want < 2 || (requested === undefined && work < MIN_PARALLEL_WORK) || !workerSource()) return 0;
    return want;
  }

  /** Threads worth starting before the jobs are known, for an adapter file of `bytes` (0 when not worth it). */
  static prestartThreads(bytes: number): number {
    const cores = coreCount();
    // M is stored twice (lora_A and lora_B), so a float32 adapter spends 8 bytes per value of M: PRESTART_BYTES is
    // about five r̂ = 348 modules (Σ r̂³ ≈ MIN_PARALLEL_WORK), below which threadsFor stays inline anyway.
    return cores >= 2 && bytes >= PRESTART_BYTES && workerSource() ? cores : 0;
  }

  /**
   * Starts up to `threads` idle workers ahead of run(), so their start-up (loading the script, compiling the WASM
   * kernels: tens of ms) overlaps the caller reading the adapter. run() takes them first; close() stops unused ones.
   */
  prestart(threads: number): void {
    const src = workerSource();
    if (!src || this.closed) return;
    while (this.workers.length < threads) {
      const w = new Worker(src.script, { eval: src.evalCode });
      w.once('error', (err) => (this.startError ??= err));
      this.workers.push(w);
    }
  }

  /** Starts the jobs; `threads` 0 computes them inline, one per event-loop turn. */
  run(jobs: readonly MoraJob[], threads: number): Promise<MoraSpectrum>[] {
    const settle: { resolve: (s: MoraSpectrum) => void; reject: (e: Error) => void }[] = [];
    const promises = jobs.map((_, i) => new Promise<MoraSpectrum>((resolve, reject) => (settle[i] = { resolve, reject })));
    // Unhandled rejections of jobs nobody awaits any more (after a cancel) must not crash the process.
    for (const p of promises) p.catch(() => undefined);
    // Prestarted workers beyond what these jobs use (all of them when computing inline) are not needed.
    for (const w of this.workers.splice(threads)) void w.terminate();
    if (threads === 0) {
      void (async () => {
        for (const [i, j] of jobs.entries()) {
          if (this.closed) return settle[i].reject(new Error('pool closed'));
          await new Promise((r) => setImmediate(r));
          try {
            settle[i].resolve(moraSingularValues(j.M, j.rHat, j.inF, j.outF, j.type));
          } catch (err) {
            settle[i].reject(err as Error);
          }
        }
      })();
      return promises;
    }
    const src = workerSource()!;
    if (this.startError) {
      for (let i = 0; i < jobs.length; i++) settle[i].reject(this.startError);
      this.close();
      return promises;
    }
    let next = 0;
    // Each worker keeps a second job queued behind the one it computes: with every core busy, the main thread gets
    // scheduled only milliseconds after a reply arrives, and a worker waiting for its next job idles that long (on
    // two vCPUs that cost ≈ 10% of the wall time over 224 modules). Near the end only one job is queued per
    // worker, so no worker sits on a queued job while another has nothing left to do.
    const inFlight = new Map<Worker, number>();
    const feed = (w: Worker): void => {
      while (next < jobs.length) {
        const depth = jobs.length - next > threads ? 2 : 1;
        if ((inFlight.get(w) ?? 0) >= depth) return;
        const id = next++;
        const j = jobs[id];
        inFlight.set(w, (inFlight.get(w) ?? 0) + 1);
        w.postMessage({ id, M: Float32Array.from(j.M), rHat: j.rHat, inF: j.inF, outF: j.outF, type: j.type });
      }
      if ((inFlight.get(w) ?? 0) === 0) void w.terminate();
    };
    for (let t = 0; t < threads; t++) {
      const w = this.workers[t] ?? new Worker(src.script, { eval: src.evalCode });
      this.workers[t] = w;
      w.on('message', (r: KernelReply) => {
        inFlight.set(w, inFlight.get(w)! - 1);
        if (r.ok) settle[r.id].resolve({ sigma: r.sigma, method: r.method, blocks: r.blocks, tolerance: r.tolerance });
        else settle[r.id].reject(rebuildError(r));
        if (!this.closed) feed(w);
      });
      w.on('error', (err) => {
        for (let i = 0; i < jobs.length; i++) settle[i].reject(err);
        this.close();
      });
      feed(w);
    }
    return promises;
  }

  /** Stops every worker; pending jobs stay unresolved (callers stop awaiting them on cancel). */
  close(): void {
    this.closed = true;
    for (const w of this.workers) void w.terminate();
    this.workers = [];
  }
}

/** σ for every job, on `threads` workers (default: all cores when the work is large enough). */
export async function moraSpectraParallel(jobs: readonly MoraJob[], threads?: number): Promise<MoraSpectrum[]> {
  const pool = new MoraSpectrumPool();
  try {
    return await Promise.all(pool.run(jobs, MoraSpectrumPool.threadsFor(jobs, threads)));
  } finally {
    pool.close();
  }
}
