// Child-process entry (dist/extractWorker.js): runs one extraction off the extension host, reporting progress at most
// 4 times a second (and always the last tensor), and stops between tensors when the host sends extract/cancel.
import { extractAdapter, type AdapterDtype } from './extract';
import type { ExtractMethod } from './extractPlan';
import type { MoraType } from './mora';
import { isHostToExtractWorker, type ExtractJob, type ExtractWorkerProgress, type ExtractWorkerToHost, type HostToExtractWorker } from '../protocol/extractWorker';
import { sendToParent, serveOneJob, throttled } from '../util/childJob';


/** Runs a job; `post` receives every message, the last one extract/done or extract/error. Exported for tests. */
export async function runJob(job: ExtractJob, signal: AbortSignal, post: (m: ExtractWorkerToHost) => void | Promise<void>): Promise<void> {
  const onProgress = throttled((p: ExtractWorkerProgress) => void post({ type: 'extract/progress', done: p.done, total: p.total, module: p.module }));
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
  serveOneJob<HostToExtractWorker>({
    isInbound: isHostToExtractWorker,
    cancel: 'extract/cancel',
    run: (m, signal) => (m.type === 'extract/start' ? runJob(m.job, signal, sendToParent) : Promise.resolve()),
    // A start the validator refuses would otherwise leave the host waiting: answer it, then end.
    refuse: (m) =>
      typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'extract/start'
        ? sendToParent({ type: 'extract/error', name: 'ExtractError', kind: 'BadOption', message: 'malformed extract job' })
        : undefined,
  });
}

if (require.main === module && process.send) main();
