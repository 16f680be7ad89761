// Host side of src/protocol/spectrumWorker.ts: forks dist/spectrumWorker.js for one analysis and turns its messages
// into a promise with progress and cancellation. A cancel asks the worker to stop between modules, then kills it
// if it has not exited within a grace period.
import { fork } from 'node:child_process';
import type * as vscode from 'vscode';
import { isWorkerToHost, type AnalyzeJob } from '../src/protocol/spectrumWorker';
import type { SpectrumReportView } from '../src/protocol/spectrum';

export class WorkerCancelled extends Error {
  override name = 'WorkerCancelled';
}

/** An error the worker reported, keeping its name and kind for the one-line message. */
export class SpectrumWorkerError extends Error {
  constructor(
    override readonly name: string,
    readonly kind: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

const KILL_GRACE_MS = 2000;

export function runSpectrumWorker(
  script: string,
  job: AnalyzeJob,
  token: vscode.CancellationToken,
  onProgress: (p: { done: number; total: number; module: string }) => void,
): Promise<SpectrumReportView> {
  return new Promise((resolve, reject) => {
    const child = fork(script, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
    let stderr = '';
    let settled = false;
    const finish = (f: () => void): void => {
      if (settled) return;
      settled = true;
      sub.dispose();
      f();
    };
    child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-4000)));
    const sub = token.onCancellationRequested(() => {
      if (child.connected) child.send({ type: 'analyze/cancel' });
      const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      child.once('exit', () => clearTimeout(timer));
      finish(() => reject(new WorkerCancelled('cancelled')));
    });
    child.on('message', (m: unknown) => {
      if (!isWorkerToHost(m)) return;
      if (m.type === 'analyze/progress') onProgress(m);
      else if (m.type === 'analyze/done') finish(() => resolve(m.report));
      else if (m.kind === 'Cancelled') finish(() => reject(new WorkerCancelled(m.message)));
      else finish(() => reject(new SpectrumWorkerError(m.name, m.kind, m.message)));
    });
    child.once('error', (err) => finish(() => reject(err)));
    child.once('exit', (code, signal) =>
      finish(() => reject(new SpectrumWorkerError('SpectrumWorkerError', 'Crashed', `worker exited (${signal ?? code}) ${stderr.trim().split('\n').pop() ?? ''}`))),
    );
    child.send({ type: 'analyze/start', job });
    if (token.isCancellationRequested) child.send({ type: 'analyze/cancel' });
  });
}
