// Child-process entry (dist/extractWorker.js): runs one extraction off the extension host, reporting progress at most
// 4 times a second (and always the last tensor), and stops between tensors when the host sends extract/cancel.
import { extractAdapter, type AdapterDtype } from './extract';
import type { ExtractMethod } from './extractPlan';
import type { MoraType } from './mora';
import { isHostToExtractWorker, type ExtractJob, type ExtractWorkerProgress, type ExtractWorkerToHost } from '../protocol/extractWorker';

const PROGRESS_INTERVAL_MS = 250;

function send(m: ExtractWorkerToHost): Promise<void> {
  return new Promise((resolve) => (process.send ? process.send(m, undefined, {}, () => resolve()) : resolve()));
}

/** Runs a job; `post` receives every message, the last one extract/done or extract/error. Exported for tests. */
export async function runJob(job: ExtractJob, signal: AbortSignal, post: (m: ExtractWorkerToHost) => void | Promise<void>): Promise<void> {
  let last = 0;
  const onProgress = (p: ExtractWorkerProgress): void => {
    const now = Date.now();
    if (now - last < PROGRESS_INTERVAL_MS && p.done < p.total) return;
    last = now;
    void post({ type: 'extract/progress', done: p.done, total: p.total, module: p.module });
  };
  try {
    const result = await extractAdapter({
      base: job.base,
      tuned: job.tuned,
      out: job.out,
      // The values are extractAdapter's to check (named ExtractError BadOption / BadRank), not the protocol's.
      method: job.method as ExtractMethod | undefined,
      r: job.r,
      moraType: job.moraType as MoraType | undefined,
      targetModules: job.targets,
      dtype: job.dtype as AdapterDtype | undefined,
      force: job.force,
      signal,
      onProgress,
    });
    await post({ type: 'extract/done', result });
  } catch (err) {
    const e = err as Error & { kind?: unknown };
    await post({ type: 'extract/error', name: e.name || 'Error', kind: typeof e.kind === 'string' ? e.kind : undefined, message: e.message ?? String(err) });
  }
}

function main(): void {
  const ac = new AbortController();
  let started = false;
  process.on('message', (m: unknown) => {
    if (!isHostToExtractWorker(m)) {
      // A start the validator refuses would otherwise leave the host waiting: answer it, then end.
      if (!started && typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'extract/start') {
        started = true;
        void send({ type: 'extract/error', name: 'ExtractError', kind: 'BadOption', message: 'malformed extract job' }).then(() => process.disconnect?.());
      }
      return;
    }
    if (m.type === 'extract/cancel') {
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
