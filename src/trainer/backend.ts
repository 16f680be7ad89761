// The TensorFlow.js backend ladder: tfjs-node-gpu (CUDA) → tfjs-node → WebGPU (Dawn) → wasm (SIMD) → cpu.
// Each rung is loaded in try/catch; every rung passed over on the way down leaves one note saying why, which the
// trainer reports to the user (train/ready). A forced choice that cannot be had is a BackendError.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initWebGpu, releaseWebGpu } from './webgpuSetup';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { BackendChoice } from '../protocol/trainer';

export class BackendError extends Error {
  override name = 'BackendError';
  readonly kind = 'Unavailable';
}

export interface BackendSelection {
  backend: Exclude<BackendChoice, 'auto'>;
  /** One line per rung that was skipped (auto) and why. */
  notes: string[];
  /** What was chosen, for the log: e.g. "wasm (SIMD, 1 thread)" or the WebGPU adapter name. */
  detail: string;
}

type Rung = Exclude<BackendChoice, 'auto'>;
type Attempt = { ok: true; detail: string } | { ok: false; why: string };

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n')[0];
const isMissing = (err: unknown) => (err as { code?: string })?.code === 'MODULE_NOT_FOUND';

/** Native TensorFlow bindings; both packages register the 'tensorflow' backend when they load. */
async function tryNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<Attempt> {
  const short = pkg.slice('@tensorflow/'.length);
  try {
    require(pkg);
  } catch (err) {
    if (isMissing(err)) {
      const needs = pkg.endsWith('gpu') ? 'libtensorflow and CUDA 11.2/cuDNN 8.1' : 'libtensorflow';
      return { ok: false, why: `${short} not installed: its install needs network access to download ${needs}` };
    }
    return { ok: false, why: `${short} failed to load: ${firstLine(err)}` };
  }
  if (!(await tf.setBackend('tensorflow'))) return { ok: false, why: `${short} loaded but its backend did not initialise` };
  return { ok: true, detail: short };
}

async function tryWebgpu(forced: boolean): Promise<Attempt> {
  const init = await initWebGpu();
  if (!init.ok) return { ok: false, why: init.note };
  if (!forced && init.software) {
    // Measured here: llvmpipe through Dawn runs a 512² matMul at ~4.5 GFLOP/s, wasm SIMD at ~40.
    releaseWebGpu();
    return { ok: false, why: `webgpu: only a software adapter (${init.adapterInfo}), slower than wasm; force it with --backend webgpu` };
  }
  if (!(await tf.setBackend('webgpu'))) {
    releaseWebGpu();
    return { ok: false, why: `webgpu: backend did not initialise on ${init.adapterInfo}` };
  }
  return { ok: true, detail: `webgpu (${init.adapterInfo})` };
}

/** The folder holding tfjs-backend-wasm-simd.wasm: next to the bundle (esbuild copies it to dist/) or in node_modules. */
export function wasmDir(): string | undefined {
  const candidates = [__dirname, path.join(__dirname, '..', '..', 'dist')];
  try {
    candidates.push(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm')));
  } catch {
    // not resolvable from here (e.g. a packaged extension without node_modules)
  }
  return candidates.find((d) => fs.existsSync(path.join(d, 'tfjs-backend-wasm-simd.wasm')));
}

async function tryWasm(): Promise<Attempt> {
  const dir = wasmDir();
  if (!dir) return { ok: false, why: 'wasm: tfjs-backend-wasm-simd.wasm not found next to the bundle or in node_modules' };
  try {
    setWasmPaths(dir + path.sep);
    if (!(await tf.setBackend('wasm'))) return { ok: false, why: 'wasm: backend did not initialise' };
  } catch (err) {
    return { ok: false, why: `wasm: ${firstLine(err)}` };
  }
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  // wasm threads need SharedArrayBuffer workers that tfjs does not start under Node.
  return { ok: true, detail: `wasm (${simd ? 'SIMD' : 'no SIMD'}, 1 thread)` };
}

async function attempt(rung: Rung, forced: boolean): Promise<Attempt> {
  switch (rung) {
    case 'tfjs-node-gpu':
      return tryNative('@tensorflow/tfjs-node-gpu');
    case 'tfjs-node':
      return tryNative('@tensorflow/tfjs-node');
    case 'webgpu':
      return tryWebgpu(forced).catch((err) => ({ ok: false, why: `webgpu: ${firstLine(err)}` }) as Attempt);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return (await tf.setBackend('cpu')) ? { ok: true, detail: 'cpu' } : { ok: false, why: 'cpu: backend did not initialise' };
  }
}

export const ladder: readonly Rung[] = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'];

/** Chooses and initialises the backend. 'auto' walks the ladder; a forced rung that fails is a BackendError. */
export async function selectBackend(choice: BackendChoice): Promise<BackendSelection> {
  if (choice !== 'auto') {
    if (!ladder.includes(choice)) throw new BackendError(`unknown backend '${String(choice)}' (${ladder.join(', ')}, auto)`);
    const a = await attempt(choice, true);
    if (!a.ok) throw new BackendError(`backend '${choice}' is not available: ${a.why}`);
    return { backend: choice, notes: [], detail: a.detail };
  }
  const notes: string[] = [];
  for (const rung of ladder) {
    const a = await attempt(rung, false);
    if (a.ok) return { backend: rung, notes, detail: a.detail };
    notes.push(a.why);
  }
  throw new BackendError(`no backend available: ${notes.join('; ')}`);
}

/** Releases a WebGPU device so Node can exit; harmless for the other backends. */
export function releaseBackend(): void {
  releaseWebGpu();
}
