// The host↔spectrum-worker boundary: the extension host forks dist/spectrumWorker.js for each analysis, so the
// dense linear algebra never blocks the extension host. Every message is `analyze/verb`; comments give the direction.
import { isReportView, type SpectrumReportView } from './spectrum';

export interface AnalyzeJob {
  /** Adapter folder, or the fine-tuned model folder when `finetuned` is set. */
  adapter: string;
  base?: string;
  /** Full fine-tune mode: ΔW = W(adapter) − W(base). */
  finetuned?: boolean;
  topK?: number;
  threshold?: number;
  intruders?: boolean;
}

/** host → worker */
export type HostToWorker =
  | { type: 'analyze/start'; job: AnalyzeJob } // host → worker: begin (one job per process)
  | { type: 'analyze/cancel' }; // host → worker: stop between modules; answers analyze/error kind Cancelled

/** worker → host */
export type WorkerToHost =
  | { type: 'analyze/progress'; done: number; total: number; module: string } // worker → host: ≤ 4 per second
  | { type: 'analyze/done'; report: SpectrumReportView } // worker → host: finished; the worker exits next
  | { type: 'analyze/error'; name: string; kind?: string; message: string }; // worker → host: failed or cancelled

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

const optNum = (x: unknown): boolean => x === undefined || (typeof x === 'number' && Number.isFinite(x));

export function isAnalyzeJob(x: unknown): x is AnalyzeJob {
  return (
    isObject(x) &&
    typeof x.adapter === 'string' &&
    x.adapter !== '' &&
    (x.base === undefined || typeof x.base === 'string') &&
    (x.finetuned === undefined || typeof x.finetuned === 'boolean') &&
    (x.intruders === undefined || typeof x.intruders === 'boolean') &&
    optNum(x.topK) &&
    optNum(x.threshold)
  );
}

export function isHostToWorker(x: unknown): x is HostToWorker {
  if (!isObject(x)) return false;
  if (x.type === 'analyze/cancel') return true;
  return x.type === 'analyze/start' && isAnalyzeJob(x.job);
}

export function isWorkerToHost(x: unknown): x is WorkerToHost {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'analyze/progress':
      return typeof x.done === 'number' && typeof x.total === 'number' && typeof x.module === 'string';
    case 'analyze/done':
      return isReportView(x.report);
    case 'analyze/error':
      return typeof x.name === 'string' && typeof x.message === 'string';
    default:
      return false;
  }
}
