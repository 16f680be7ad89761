// Adapter folder (+ optional base model) → per-module spectrum report. Every σ comes from the structure of the
// adapter (LoRA: QR + r×r core; MoRA: blocks of M), never from an SVD of the [out, in] ΔW.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  WEIGHTS_FILE, baseDims, layerIndexOf, mergeWeight, moduleScaling, readAdapter, readAdapterConfig, resolveBaseWeightName,
  type AdapterConfig, type AdapterModule,
} from '../adapters';
import { ModelWeights } from '../safetensors';
import { intruderDimensions, type IntruderOptions, type IntruderResult } from './intruder';
import { loraSingularValues } from './lowRank';
import { spectrumMetrics, type SpectrumMetrics } from './metrics';
import { moraSingularValues, type MoraSpectrum } from './moraSpectrum';
import { MoraSpectrumPool, type MoraJob } from './parallelKernel';
import type { ModuleSpectrumView } from '../protocol/spectrum';
import { KindError } from '../util/kindError';

const EPS = 2.220446049250313e-16;

export type SpectrumErrorKind = 'BaseShapesUnknown' | 'Cancelled' | 'NoModules' | 'ShapeMismatch';

export class SpectrumError extends KindError<SpectrumErrorKind> {
  override name = 'SpectrumError';
}

export interface AnalyzeOptions {
  /** Base model folder: supplies MoRA's in/out sizes and, for intruder dimensions, the base weights. */
  base?: string;
  /** Base weight shape per module path as stored (overrides `base` for shapes; used by tests and benchmarks). */
  shapes?: (modulePath: string) => number[] | undefined;
  /** k for the energy metric (default 8). */
  topK?: number;
  /** σ threshold for the count metric (default 0.1). */
  threshold?: number;
  /** Compute intruder dimensions (needs `base`); expensive: two randomized SVDs of W per module. */
  intruders?: IntruderOptions | false;
  onProgress?: (p: { done: number; total: number; module: string }) => void;
  signal?: AbortSignal;
}

/** One module's result: the protocol's view (documented there) plus what stays on the host side. */
export interface ModuleSpectrum extends Omit<ModuleSpectrumView, 'intruders'> {
  intruders?: IntruderResult;
  /** Wall time spent on this module. */
  ms: number;
}

export interface SpectrumReport {
  adapter: string;
  base: string | null;
  kind: 'lora' | 'dora' | 'mora' | 'full';
  moraType: 1 | 6 | null;
  r: number;
  modules: ModuleSpectrum[];
  elapsedMs: number;
}

const isDir = (p: string): Promise<boolean> => fs.stat(p).then((s) => s.isDirectory(), () => false);

/** Size of the adapter's weights file (0 if unreadable: readAdapter then reports the real problem). */
const adapterFileBytes = (dir: string): Promise<number> =>
  fs.stat(path.join(dir, WEIGHTS_FILE)).then((s) => s.size, () => 0);

/** The base folder to use: the explicit one, else base_model_name_or_path when it names a local folder. */
export async function resolveBaseDir(adapterDir: string, cfg: AdapterConfig, explicit?: string): Promise<string | null> {
  if (explicit) return explicit;
  const named = cfg.base_model_name_or_path;
  if (!named) return null;
  for (const cand of [path.resolve(named), path.resolve(adapterDir, named)]) if (await isDir(cand)) return cand;
  return null;
}

/** Orders modules by layer, then by path, so tables and charts read top to bottom through the network. */
export function moduleOrder(a: { layer: number | null; path: string }, b: { layer: number | null; path: string }): number {
  return (a.layer ?? -1) - (b.layer ?? -1) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

export function moduleTypeOf(modulePath: string): string {
  return modulePath.slice(modulePath.lastIndexOf('.') + 1);
}

/** σ of one module's ΔW, [out, in] orientation. */
export function moduleSigma(
  cfg: AdapterConfig,
  m: AdapterModule,
  baseShape: number[] | undefined,
): { sigma: Float64Array; rows: number; cols: number; rank: number; method: ModuleSpectrum['method']; tolerance: number } {
  if (cfg.use_mora) {
    if (!baseShape) {
      throw new SpectrumError(
        'BaseShapesUnknown',
        `module ${m.path}: MoRA's M does not record in/out sizes; pass the base model (--base DIR) or set base_model_name_or_path to a local folder`,
      );
    }
    const { inF, outF } = baseDims(baseShape, cfg.fan_in_fan_out);
    const rHat = m.aShape[0];
    const s = moraSingularValues(m.A, rHat, inF, outF, cfg.mora_type);
    return { sigma: s.sigma, rows: outF, cols: inF, rank: rHat, method: s.method, tolerance: s.tolerance };
  }
  const [r, inF] = m.aShape;
  const outF = m.bShape[0];
  const sigma = loraSingularValues(m.A, m.B, r, inF, outF, moduleScaling(cfg, m.path));
  return { sigma, rows: outF, cols: inF, rank: r, method: 'low-rank', tolerance: Math.max(inF, outF) * EPS * (sigma[0] ?? 0) };
}

/** Starts σ of every MoRA module on the pool, or returns null to compute inline (small work, unknown shapes). */
function startMoraJobs(
  pool: MoraSpectrumPool,
  cfg: AdapterConfig,
  mods: AdapterModule[],
  shapeOf: (p: string) => number[] | undefined,
): Promise<MoraSpectrum>[] | null {
  const jobs: MoraJob[] = [];
  for (const m of mods) {
    const shape = shapeOf(m.path);
    if (!shape) return null;
    const { inF, outF } = baseDims(shape, cfg.fan_in_fan_out);
    jobs.push({ M: m.A, rHat: m.aShape[0], inF, outF, type: cfg.mora_type });
  }
  const threads = MoraSpectrumPool.threadsFor(jobs);
  return threads > 0 ? pool.run(jobs, threads) : null;
}

async function moraResult(
  job: Promise<MoraSpectrum>,
  cfg: AdapterConfig,
  m: AdapterModule,
  shape: number[],
): Promise<ReturnType<typeof moduleSigma>> {
  const s = await job;
  const { inF, outF } = baseDims(shape, cfg.fan_in_fan_out);
  return { sigma: s.sigma, rows: outF, cols: inF, rank: m.aShape[0], method: s.method, tolerance: s.tolerance };
}

function checkCancelled(signal?: AbortSignal): void {
  if (signal?.aborted) throw new SpectrumError('Cancelled', 'spectrum analysis cancelled');
}

/** Analyzes every module of a PEFT adapter folder (LoRA, DoRA's directional part, or MoRA). */
export async function analyzeAdapter(dir: string, opts: AnalyzeOptions = {}): Promise<SpectrumReport> {
  const t0 = performance.now();
  const cfg = await readAdapterConfig(dir);
  const baseDir = await resolveBaseDir(dir, cfg, opts.base);
  const weights = baseDir ? await ModelWeights.open(baseDir) : null;
  // Large MoRA adapters: every module's σ on worker threads, consumed in order below (small ones stay inline). The
  // workers start now, so their start-up overlaps reading the adapter.
  const pool = new MoraSpectrumPool();
  try {
    if (cfg.use_mora) pool.prestart(MoraSpectrumPool.prestartThreads(await adapterFileBytes(dir)));
    const baseName = (p: string): string | undefined => (weights ? resolveBaseWeightName(p, (n) => weights.has(n)) : undefined);
    const shapeOf = (p: string): number[] | undefined => {
      const given = opts.shapes?.(p);
      if (given) return given;
      const name = baseName(p);
      return name && weights ? [...weights.info(name).shape] : undefined;
    };
    const adapter = await readAdapter(dir, { baseShape: shapeOf });
    const mods = [...adapter.modules.values()]
      .map((m) => ({ m, layer: layerIndexOf(m.path, cfg.layers_pattern) ?? null, path: m.path }))
      .sort(moduleOrder);
    if (mods.length === 0) throw new SpectrumError('NoModules', `${dir}: the adapter has no LoRA/MoRA modules`);
    const out: ModuleSpectrum[] = [];
    const pending = cfg.use_mora ? startMoraJobs(pool, cfg, mods.map((x) => x.m), shapeOf) : null;
    for (const [i, { m, layer }] of mods.entries()) {
      checkCancelled(opts.signal);
      const t = performance.now();
      const shape = shapeOf(m.path);
      const s = pending ? await moraResult(pending[i], cfg, m, shape!) : moduleSigma(cfg, m, shape);
      const metrics = spectrumMetrics(s.sigma, {
        rows: s.rows,
        cols: s.cols,
        topK: opts.topK,
        threshold: opts.threshold,
        rankTol: Math.max(s.tolerance, Math.max(s.rows, s.cols) * EPS * (s.sigma[0] ?? 0)),
      });
      const entry: ModuleSpectrum = {
        path: m.path,
        layer,
        moduleType: moduleTypeOf(m.path),
        kind: cfg.use_mora ? 'mora' : cfg.use_dora ? 'dora' : 'lora',
        rows: s.rows,
        cols: s.cols,
        rank: s.rank,
        sigma: Array.from(s.sigma),
        method: s.method,
        tolerance: s.tolerance,
        metrics,
        ms: 0,
      };
      if (opts.intruders && weights && shape) {
        const name = baseName(m.path)!;
        const W = await weights.readFloat32(name);
        const merged = mergeWeight(cfg, m, W, shape);
        entry.intruders = intruderDimensions(W, merged, shape[0], shape[1], opts.intruders);
      }
      entry.ms = performance.now() - t;
      out.push(entry);
      opts.onProgress?.({ done: i + 1, total: mods.length, module: m.path });
      // Let cancel messages and progress flushes through between modules.
      await new Promise((r) => setImmediate(r));
    }
    return {
      adapter: dir,
      base: baseDir,
      kind: cfg.use_mora ? 'mora' : cfg.use_dora ? 'dora' : 'lora',
      moraType: cfg.use_mora ? cfg.mora_type : null,
      r: cfg.r,
      modules: out,
      elapsedMs: performance.now() - t0,
    };
  } finally {
    pool.close();
    await weights?.close();
  }
}
