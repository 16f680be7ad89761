// Spectra of a full fine-tune: ΔW = W_finetuned − W_base for every 2-D weight two model folders share. No
// structure to exploit, so each module gets the top-k of a randomized SVD with its error bound, and the exact ‖ΔW‖_F.

import { ModelWeights } from '../safetensors';
import { layerIndexOf } from '../adapters';
import { storeValues, subtractValues } from '../adapters/extractDelta';
import { randomizedSvd } from './dense';
import { spectrumMetrics } from './metrics';
import { moduleOrder, moduleTypeOf, SpectrumError, type ModuleSpectrum, type SpectrumReport } from './analyze';

export interface FullFinetuneOptions {
  /** Singular values estimated per matrix (default 32). */
  k?: number;
  topK?: number;
  threshold?: number;
  /** Only tensors whose name passes (default: 2-D `.weight` tensors other than embeddings and the LM head). */
  include?: (name: string) => boolean;
  onProgress?: (p: { done: number; total: number; module: string }) => void;
  signal?: AbortSignal;
}

const defaultInclude = (name: string): boolean => name.endsWith('.weight') && !/embed|wte|wpe|lm_head/.test(name);

export async function analyzeFullFinetune(baseDir: string, ftDir: string, opts: FullFinetuneOptions = {}): Promise<SpectrumReport> {
  const t0 = performance.now();
  const base = await ModelWeights.open(baseDir);
  const ft = await ModelWeights.open(ftDir).catch(async (err: unknown) => {
    await base.close();
    throw err;
  });
  try {
    const include = opts.include ?? defaultInclude;
    const names = ft
      .names()
      .filter((n) => include(n) && base.has(n) && ft.info(n).shape.length === 2)
      .map((n) => ({ n, path: n.replace(/\.weight$/, ''), layer: layerIndexOf(n, null) ?? null }))
      .sort(moduleOrder);
    if (names.length === 0) throw new SpectrumError('NoModules', `${ftDir} and ${baseDir} share no 2-D weights`);
    const modules: ModuleSpectrum[] = [];
    for (const [i, { n, path, layer }] of names.entries()) {
      if (opts.signal?.aborted) throw new SpectrumError('Cancelled', 'spectrum analysis cancelled');
      const t = performance.now();
      const [rows, cols] = ft.info(n).shape;
      const bs = base.info(n).shape;
      if (bs[0] !== rows || bs[1] !== cols) {
        throw new SpectrumError('ShapeMismatch', `${n}: fine-tuned [${rows}, ${cols}] vs base [${bs.join(', ')}]`);
      }
      // From the stored values, as mora extract forms ΔW (F64 weights stay float64 instead of rounding to float32).
      const dW = new Float64Array(rows * cols);
      storeValues(dW, await ft.readBytes(n), ft.info(n).dtype);
      subtractValues(dW, await base.readBytes(n), base.info(n).dtype);
      const top = randomizedSvd(dW, rows, cols, opts.k ?? 32);
      const metrics = spectrumMetrics(top.s, { rows, cols, topK: opts.topK, threshold: opts.threshold, rankTol: top.residual });
      // Norm-based metrics use the exact ‖ΔW‖_F: over the truncated spectrum the top-k would look like all the energy.
      const f2 = top.frobenius * top.frobenius;
      metrics.frobenius = top.frobenius;
      metrics.stableRank = top.s[0] > 0 ? f2 / (top.s[0] * top.s[0]) : 0;
      metrics.energyTopK = f2 > 0 ? top.s.subarray(0, metrics.topK).reduce((e, x) => e + x * x, 0) / f2 : 0;
      modules.push({
        path,
        layer,
        moduleType: moduleTypeOf(path),
        kind: 'full',
        rows,
        cols,
        rank: Math.min(rows, cols),
        sigma: Array.from(top.s),
        method: 'randomized',
        tolerance: top.residual,
        metrics,
        ms: performance.now() - t,
      });
      opts.onProgress?.({ done: i + 1, total: names.length, module: path });
      await new Promise((r) => setImmediate(r));
    }
    return { adapter: ftDir, base: baseDir, kind: 'full', moraType: null, r: 0, modules, elapsedMs: performance.now() - t0 };
  } finally {
    await Promise.all([base.close(), ft.close()]);
  }
}
