// WebGPU for TensorFlow.js under Node through the `webgpu` package (Dawn). Dawn's native backend comes first
// (Vulkan on Linux: any GPU, or Mesa ≥ 25 lavapipe on a CPU-only machine; Mesa 22's lavapipe lacks a feature Dawn
// requires), then Dawn's OpenGL ES backend in compatibility mode, which stock Mesa (llvmpipe through EGL,
// surfaceless) serves with no display. Dawn opens the unversioned libEGL.so, which Debian ships in libegl-dev.
// The tfjs backend is registered on the device made here, because the package's own factory requests a core-mode
// adapter and so never finds the OpenGL ES one. Under Node only async reads work (data(), not dataSync()).
import * as tf from '@tensorflow/tfjs';
import type * as Dawn from 'webgpu'; // types only: `webgpu` is a native package, external to the bundles

export type WebGpuInit =
  | {
      ok: true;
      /** One line for the log, e.g. "opengles: llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6)". */
      adapterInfo: string;
      /** Which Dawn backend answered: its native one (Vulkan, D3D12, Metal) or OpenGL ES in compatibility mode. */
      path: 'native' | 'opengles';
      /** A CPU rasterizer (llvmpipe, lavapipe, SwiftShader): it works, but wasm is usually faster. */
      software: boolean;
    }
  | { ok: false; note: string };

export interface WebGpuOptions {
  /** Only this Dawn backend (for benchmarks and tests); default: native first, OpenGL ES when that has none or a
   *  software one. */
  path?: 'native' | 'opengles';
}

type DawnModule = { create: typeof Dawn.create; globals: object };

interface Held {
  device: GPUDevice;
  /** Undoes what was done to `navigator` so a later init starts clean. */
  restoreNavigator: () => void;
}

let held: Held | undefined;
let pending: Promise<WebGpuInit> | undefined;

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n')[0];
const softwareName = /llvmpipe|lavapipe|softpipe|swiftshader|software/i;

// Limits tfjs needs above the WebGPU defaults (its own factory asks for the same ones), plus the storage-buffer count,
// whose default is lower in compatibility mode (the spec allows 4) while fused matMul + bias + prelu binds 5.
const wantedLimits = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
] as const;

/**
 * Sets up WebGPU and registers the tfjs 'webgpu' backend on it (it does not switch to it: call
 * tf.setBackend('webgpu')). Safe to call repeatedly; the answer (and the options of the call that made it) is cached
 * until releaseWebGpu(). On failure the note is one line saying why, starting with "webgpu: ".
 */
export function initWebGpu(opts: WebGpuOptions = {}): Promise<WebGpuInit> {
  pending ??= setup(opts).catch((err): WebGpuInit => {
    dropHeld();
    return { ok: false, note: `webgpu: ${firstLine(err)}` };
  });
  return pending;
}

async function setup(opts: WebGpuOptions): Promise<WebGpuInit> {
  let dawn: DawnModule;
  try {
    // A native addon in an ES module; Node ≥ 20.19 can require() it. Kept out of the bundle (esbuild.mjs).
    dawn = require('webgpu') as DawnModule;
  } catch (err) {
    return { ok: false, note: `webgpu: the Dawn bindings (npm package webgpu) did not load: ${firstLine(err)}` };
  }
  // GPUBufferUsage, GPUMapMode, ... : tfjs reads these as globals, as in a browser.
  Object.assign(globalThis, dawn.globals);

  let found: { gpu: GPU; adapter: GPUAdapter; path: 'native' | 'opengles' } | undefined;
  if (opts.path !== 'opengles') {
    const gpu = dawn.create([]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
    if (adapter) found = { gpu, adapter, path: 'native' };
  }
  // A software native adapter (lavapipe) is worth replacing: llvmpipe through OpenGL ES measured ~3× faster here
  // (matMul 512²: 4.7 GFLOP/s against 1.5 on Mesa 25 lavapipe, same 2 cores).
  if ((!found || isSoftware(found.adapter.info)) && process.platform === 'linux' && opts.path !== 'native') {
    // No display here: EGL must not look for X11/Wayland. Must be set before Dawn first loads EGL.
    process.env.EGL_PLATFORM ??= 'surfaceless';
    const gpu = dawn.create(['backend=opengles']);
    const compat = { featureLevel: 'compatibility' } as GPURequestAdapterOptions;
    const adapter = await gpu.requestAdapter(compat).catch(() => null);
    if (adapter) found = { gpu, adapter, path: 'opengles' };
  }
  if (!found) {
    const why =
      process.platform === 'linux'
        ? 'no adapter: no usable Vulkan driver (libvulkan1 + a GPU driver, or Mesa ≥ 25 lavapipe) and no OpenGL ES ' +
          'through EGL (Dawn opens libEGL.so: apt-get install libegl-dev libegl-mesa0 libgl1-mesa-dri)'
        : 'no adapter from Dawn';
    return { ok: false, note: `webgpu: ${why}` };
  }

  const { gpu, adapter, path } = found;
  const limits: Record<string, number> = {};
  for (const name of wantedLimits) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof v === 'number') limits[name] = v;
  }
  const device = await adapter.requestDevice({ requiredLimits: limits });
  held = { device, restoreNavigator: installNavigator(gpu) };

  // The package checks navigator.gpu when it first loads, so it is required only now. A lazy require keeps
  // esbuild from hoisting it above this point in the bundle.
  const { WebGPUBackend } = require('@tensorflow/tfjs-backend-webgpu') as typeof import('@tensorflow/tfjs-backend-webgpu');
  const info = adapter.info;
  const backend = new WebGPUBackend(device, info);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  // Priority 0: never picked implicitly; the backend ladder chooses it with tf.setBackend('webgpu').
  tf.registerBackend('webgpu', () => backend, 0);

  return { ok: true, adapterInfo: `${path}: ${describe(info)}`, path, software: isSoftware(info) };
}

function describe(info: GPUAdapterInfo): string {
  const name = [info.vendor, info.architecture, info.device].filter((s) => s).join(' ').trim() || 'unknown adapter';
  return info.description ? `${name} (${info.description})` : name;
}

function isSoftware(info: GPUAdapterInfo): boolean {
  return softwareName.test(describe(info)) || (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
}

/** Puts `gpu` at navigator.gpu (creating `navigator` where Node has none) and returns how to undo it. */
function installNavigator(gpu: GPU): () => void {
  const g = globalThis as { navigator?: object };
  const own = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  if (g.navigator && Object.isExtensible(g.navigator)) {
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
    return () => {
      if (g.navigator) delete (g.navigator as { gpu?: unknown }).gpu;
    };
  }
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return () => {
    if (own) Object.defineProperty(globalThis, 'navigator', own);
    else delete g.navigator;
  };
}

/**
 * Unregisters the tfjs backend and destroys the Dawn device, so that Node can exit (Dawn builds have kept the event
 * loop alive while a device lived; webgpu 0.6.2 on Mesa exits either way) and GPU memory is freed. A later
 * initWebGpu() sets everything up again. Harmless when nothing was set up.
 */
export function releaseWebGpu(): void {
  pending = undefined;
  dropHeld();
}

function dropHeld(): void {
  if (!held) return;
  const h = held;
  held = undefined;
  try {
    if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  } finally {
    h.device.destroy();
    h.restoreNavigator();
  }
}
