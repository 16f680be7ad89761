// Child-process entry (dist/spectrumWorker.js): runs one analysis off the extension host, reporting progress at
// most 4 times a second, and stops between modules when asked.
import { analyzeAdapter } from './analyze';
import { analyzeFullFinetune } from './fullFinetune';
import { isHostToWorker, type AnalyzeJob, type HostToWorker, type WorkerToHost } from '../protocol/spectrumWorker';
import { sendToParent, serveOneJob, throttled } from '../util/childJob';


/** Runs a job; `send` receives every message. Exported for tests, which run it in-process. */
export async function runJob(job: AnalyzeJob, signal: AbortSignal, post: (m: WorkerToHost) => void | Promise<void>): Promise<void> {
  const onProgress = throttled((p: { done: number; total: number; module: string }) => void post({ type: 'analyze/progress', ...p }));
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
  serveOneJob<HostToWorker>({
    isInbound: isHostToWorker,
    cancel: 'analyze/cancel',
    run: (m, signal) => (m.type === 'analyze/start' ? runJob(m.job, signal, sendToParent) : Promise.resolve()),
  });
}

if (require.main === module && process.send) main();
