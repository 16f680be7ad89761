// Host side of src/protocol/extractWorker.ts: forks dist/extractWorker.js for one extraction and turns its messages
// into a promise with progress and cancellation. A cancel asks the worker to stop between tensors and waits for its
// answer, so that when the promise settles the outcome on disk is known (a cancel that arrives while the adapter is
// already being written resolves with the written result); a worker still busy after a grace period is killed.
import { fork } from 'node:child_process';
import type * as vscode from 'vscode';
import type { ExtractResult } from '../src/adapters/extract';
import { ExtractError, type ExtractErrorKind } from '../src/adapters/extractError';
import { isExtractJob, isExtractWorkerToHost, type ExtractJob, type ExtractWorkerProgress } from '../src/protocol/extractWorker';

/** An error the worker reported that is not an ExtractError (or crashed), keeping its name and kind. */
export class ExtractWorkerError extends Error {
  constructor(
    override readonly name: string,
    readonly kind: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

const EXTRACT_KINDS: ReadonlySet<string> = new Set<ExtractErrorKind>([
  'BadOption', 'BadRank', 'OutputExists', 'OutputIsInput', 'InvalidModel', 'ArchitectureMismatch', 'ShapeMismatch',
  'MissingTarget', 'NoTargets', 'NoDifference', 'UnsupportedDtype', 'NonFinite', 'Cancelled',
]);

/** The worker's error as the host throws it: an ExtractError again where it was one, so callers branch on kind. */
export function workerError(name: string, kind: string | undefined, message: string): Error {
  if (name === 'ExtractError' && kind !== undefined && EXTRACT_KINDS.has(kind)) return new ExtractError(kind as ExtractErrorKind, message);
  return new ExtractWorkerError(name, kind, message);
}

/** Longest wait for the worker to answer a cancel: it checks between tensors, and one LoRA fit takes ≲ 1–3 s. */
export const KILL_GRACE_MS = 5000;

export function runExtractWorker(
  script: string,
  job: ExtractJob,
  token: vscode.CancellationToken,
  onProgress: (p: ExtractWorkerProgress) => void,
): Promise<ExtractResult> {
  // The worker would refuse a malformed job too; checking here keeps the error on this side of the boundary.
  if (!isExtractJob(job)) return Promise.reject(new ExtractError('BadOption', 'malformed extract job (base, tuned and out must be paths)'));
  return new Promise((resolve, reject) => {
    const child = fork(script, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
    let stderr = '';
    let settled = false;
    let cancelled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const finish = (f: () => void): void => {
      if (settled) return;
      settled = true;
      sub.dispose();
      clearTimeout(killTimer);
      f();
    };
    child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-4000)));
    const cancel = (): void => {
      if (cancelled || settled) return;
      cancelled = true;
      if (child.connected) child.send({ type: 'extract/cancel' });
      killTimer = setTimeout(() => {
        child.kill('SIGKILL');
        finish(() => reject(new ExtractError('Cancelled', `extraction cancelled (the worker was stopped after ${KILL_GRACE_MS / 1000} s)`)));
      }, KILL_GRACE_MS);
    };
    const sub = token.onCancellationRequested(cancel);
    child.on('message', (m: unknown) => {
      if (!isExtractWorkerToHost(m)) return;
      if (m.type === 'extract/progress') {
        if (!settled && !cancelled) onProgress(m);
      } else if (m.type === 'extract/done') finish(() => resolve(m.result));
      else finish(() => reject(workerError(m.name, m.kind, m.message)));
    });
    child.once('error', (err) => finish(() => reject(err)));
    child.once('exit', (code, signal) => {
      if (cancelled) finish(() => reject(new ExtractError('Cancelled', 'extraction cancelled')));
      const last = stderr.trim().split('\n').pop() ?? '';
      finish(() => reject(new ExtractWorkerError('ExtractWorkerError', 'Crashed', `extract worker exited (${signal ?? code}) ${last}`.trim())));
    });
    child.send({ type: 'extract/start', job });
    if (token.isCancellationRequested) cancel();
  });
}
