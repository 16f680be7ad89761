// Worker-thread entry (dist/spectrumKernelWorker.js): computes one MoRA spectrum per message for MoraSpectrumPool.
import { parentPort } from 'node:worker_threads';
import type { MoraType } from '../adapters';
import { moraSingularValues } from './moraSpectrum';
import type { KernelReply } from './parallelKernel';

interface KernelJob {
  id: number;
  M: Float32Array;
  rHat: number;
  inF: number;
  outF: number;
  type: MoraType;
}

parentPort?.on('message', (j: KernelJob) => {
  let reply: KernelReply;
  try {
    const s = moraSingularValues(j.M, j.rHat, j.inF, j.outF, j.type);
    reply = { id: j.id, ok: true, sigma: s.sigma, method: s.method, blocks: s.blocks, tolerance: s.tolerance };
    parentPort!.postMessage(reply, [s.sigma.buffer as ArrayBuffer]);
  } catch (err) {
    const e = err as Error & { kind?: string };
    reply = { id: j.id, ok: false, name: e.name || 'Error', kind: e.kind, message: e.message };
    parentPort!.postMessage(reply);
  }
});
