// Child-process entry (dist/spectrumWorker.js): runs one analysis off the extension host, reporting progress at
// most 4 times a second, and stops between modules when asked.
import { analyzeAdapter } from './analyze';
import { analyzeFullFinetune } from './fullFinetune';
import { isHostToWorker, type AnalyzeJob, type WorkerToHost } from '../protocol/spectrumWorker';

const PROGRESS_INTERVAL_MS = 250;

function send(m: WorkerToHost): Promise<void> {
  return new Promise((resolve) => (process.send ? process.send(m, undefined, {}, () => resolve()) : resolve()));
}

/** Runs a job; `send` receives every message. Exported for tests, which run it in-process. */
export async function runJob(job: AnalyzeJob, signal: AbortSignal, post: (m: WorkerToHost) => void | Promise<void>): Promise<void> {
  let last = 0;
  const onProgress = (p: { done: number; total: number; module: string }): void => {
    const now = Date.now();
    if (now - last < PROGRESS_INTERVAL_MS && p.done < p.total) return;
    last = now;
    void post({ type: 'analyze/progress', ...p });
  };
  try {
    const opts = { topK: job.topK, threshold: job.threshold, onProgress, signal };
    const report = job.finetuned
      ? await analyzeFullFinetune(job.base ?? '', job.adapter, opts)
      : await analyzeAdapter(job.adapter, { ...opts, base: job.base || undefined, intruders: job.intruders ? {} : false });
    await post({ type: 'analyze/done', report });
  } catch (err) {
    const e = err as Error & { kind?: string };
    await post({ type: 'analyze/error', name: e.name || 'Error', kind: e.kind, message: e.message });
  }
}

function main(): void {
  const ac = new AbortController();
  let started = false;
  process.on('message', (m: unknown) => {
    if (!isHostToWorker(m)) return;
    if (m.type === 'analyze/cancel') {
      ac.abort();
      if (!started) process.exit(0);
      return;
    }
    if (started) return;
    started = true;
    void runJob(m.job, ac.signal, send).then(() => process.disconnect?.());
  });
  // The host going away ends the worker too.
  process.on('disconnect', () => process.exit(0));
}

if (require.main === module && process.send) main();
