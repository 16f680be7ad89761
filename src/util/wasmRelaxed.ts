// Feature detection for WebAssembly relaxed SIMD, used for one instruction: f64x2.relaxed_madd (a·b + c). WASM SIMD
// has no exact fused multiply–add, so the dense kernels spend a multiply and an add per term and run at the
// instruction-issue limit; relaxed_madd lets the engine emit one FMA (vfmadd on x86 with FMA3, fmla on ARM) instead.
// "Relaxed" means the result is either the fused a·b + c (one rounding) or the unfused one (two roundings), as the
// hardware has it; V8 picks one per machine, so a given machine always gives the same bits.
//
// Node ≥ 22 and VS Code's Electron enable relaxed SIMD by default. Node 20 (V8 11.3) has it behind
// --experimental-wasm-relaxed-simd; V8 reads that flag when it validates and compiles a module, so setting it at run
// time through node:v8 before the first relaxed module compiles works, in this thread and in worker threads started
// later (V8's flags are per process). Only Node code takes that step; a browser or webview just validates.

import { assembleModule, code, op } from './wasm';

let supported: boolean | null = null;

/** A tiny module whose function computes relaxed_madd on three splats: validates only where relaxed SIMD is on. */
function probe(): Uint8Array<ArrayBuffer> {
  const splat = (v: number) => code(op.f64Const(v), op.f64x2Splat);
  return assembleModule([
    { name: 'f', params: [], results: ['f64'], body: code(splat(2), splat(3), splat(1), op.f64x2RelaxedMadd, op.f64x2ExtractLane(0)) },
  ]);
}

function validates(): boolean {
  try {
    return WebAssembly.validate(probe());
  } catch {
    return false;
  }
}

/** Turns on V8's relaxed SIMD flag on Node (a no-op elsewhere or if it fails). */
function enableOnNode(): void {
  try {
    if (typeof process === 'undefined' || !process.versions?.node || typeof require !== 'function') return;
    (require('node:v8') as typeof import('node:v8')).setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // Not Node after all, or the flag is unknown to this V8: the exact kernels serve.
  }
}

/**
 * Whether f64x2.relaxed_madd validates here, after turning on Node's experimental flag if needed (once per thread).
 * Call it before compiling a module that uses relaxed instructions.
 */
export function wasmRelaxedSimdSupported(): boolean {
  if (supported === null) {
    supported = validates();
    if (!supported) {
      enableOnNode();
      supported = validates();
    }
  }
  return supported;
}
