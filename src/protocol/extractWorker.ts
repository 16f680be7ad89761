// The host↔extract-worker boundary: the extension host forks dist/extractWorker.js for each extraction, so the
// seconds of dense linear algebra per tensor (a LoRA fit is a randomized SVD) never block the extension host. Every
// message is `extract/verb`; comments give the direction. Both sides validate what they receive: the worker checks
// the host's messages (isHostToExtractWorker), the host the worker's (isExtractWorkerToHost). The job is checked for
// shape only; its values (rank, method, dtype, …) are extractAdapter's to refuse, with a named ExtractError.
import type { ExtractResult } from '../adapters/extract';

/** What to extract: the fields of ExtractOptions that cross a process boundary (no signal, no callbacks). */
export interface ExtractJob {
  base: string;
  tuned: string;
  out: string;
  method?: string;
  r?: number;
  moraType?: number;
  targets?: string[] | 'all-linear';
  dtype?: string;
  force?: boolean;
}

export interface ExtractWorkerProgress {
  done: number; // tensors finished
  total: number;
  module: string; // the module just finished
}

/** host → worker */
export type HostToExtractWorker =
  | { type: 'extract/start'; job: ExtractJob } // host → worker: begin (one job per process)
  | { type: 'extract/cancel' }; // host → worker: stop between tensors; answers extract/error kind Cancelled

/** worker → host */
export type ExtractWorkerToHost =
  | ({ type: 'extract/progress' } & ExtractWorkerProgress) // worker → host: at most 4 per second, and the last one
  | { type: 'extract/done'; result: ExtractResult } // worker → host: the adapter is written; the worker exits next
  | { type: 'extract/error'; name: string; kind?: string; message: string }; // worker → host: failed or cancelled

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const optNum = (x: unknown): boolean => x === undefined || isNum(x);
const optStr = (x: unknown): boolean => x === undefined || typeof x === 'string';
const optBool = (x: unknown): boolean => x === undefined || typeof x === 'boolean';
const path = (x: unknown): boolean => typeof x === 'string' && x !== '';

export function isExtractJob(x: unknown): x is ExtractJob {
  return (
    isObject(x) &&
    path(x.base) &&
    path(x.tuned) &&
    path(x.out) &&
    optStr(x.method) &&
    optNum(x.r) &&
    optNum(x.moraType) &&
    (x.targets === undefined || x.targets === 'all-linear' || (Array.isArray(x.targets) && x.targets.every((t) => typeof t === 'string'))) &&
    optStr(x.dtype) &&
    optBool(x.force)
  );
}

function isExtractedModule(x: unknown): boolean {
  return (
    isObject(x) &&
    typeof x.path === 'string' &&
    [x.outF, x.inF, x.rank, x.deltaNorm, x.residual, x.relError].every(isNum) &&
    typeof x.unchanged === 'boolean' &&
    optBool(x.exactSvd)
  );
}

export function isExtractResult(x: unknown): x is ExtractResult {
  return (
    isObject(x) &&
    typeof x.out === 'string' &&
    (x.method === 'lora' || x.method === 'mora') &&
    isNum(x.r) &&
    (x.moraType === undefined || x.moraType === 1 || x.moraType === 6) &&
    (x.dtype === 'F32' || x.dtype === 'BF16' || x.dtype === 'F16') &&
    Array.isArray(x.modules) &&
    x.modules.every(isExtractedModule) &&
    isNum(x.extracted) &&
    isNum(x.relError) &&
    isNum(x.seconds)
  );
}

export function isHostToExtractWorker(x: unknown): x is HostToExtractWorker {
  if (!isObject(x)) return false;
  if (x.type === 'extract/cancel') return Object.keys(x).length === 1;
  return x.type === 'extract/start' && isExtractJob(x.job);
}

export function isExtractWorkerToHost(x: unknown): x is ExtractWorkerToHost {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'extract/progress':
      return isNum(x.done) && isNum(x.total) && typeof x.module === 'string';
    case 'extract/done':
      return isExtractResult(x.result);
    case 'extract/error':
      return typeof x.name === 'string' && optStr(x.kind) && typeof x.message === 'string';
    default:
      return false;
  }
}
