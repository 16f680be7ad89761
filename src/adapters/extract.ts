// Extraction of a fine-tuned (or merged) model's ΔW = W_tuned − W_base back into a PEFT adapter: LoRA (best rank-r
// approximation, extractLora.ts) or MoRA types 1 and 6 (least-squares M, extractMora.ts).
//
// Everything that can be checked from the headers is checked before a tensor is read (extractPlan.ts). Then one
// target at a time: both tensors are read, ΔW is formed in float64 from the stored values (extractDelta.ts, into one
// buffer sized for the largest target and reused, so no 8-byte-per-element array is allocated per tensor), fitted,
// and only the small factors stay in memory. The adapter folder is written at the end, atomically, or not at all.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { bytesToFloat32, float32ToBytes, ModelWeights } from '../safetensors';
import { frobeniusNorm } from '../spectrum/dense';
import { transpose } from '../spectrum/linalg';
import type { AdapterModule } from './deltaWeight';
import { storeValues, subtractValues } from './extractDelta';
import { ExtractError } from './extractError';
import { loraFit, loraResidual, type LoraFitOptions } from './extractLora';
import { moraFit, moraResidual } from './extractMora';
import { checkExtractOptions, checkOutputPlacement, checkSameArchitecture, planExtract, type ExtractMethod, type ExtractTarget, type ExtractTargets } from './extractPlan';
import type { MoraType } from './mora';
import { writeAdapter } from './peftAdapter';
import { defaultAdapterConfig } from './peftConfig';
import { matchesTarget } from './targets';

export type AdapterDtype = 'F32' | 'BF16' | 'F16';

export interface ExtractOptions {
  base: string; // base model folder (or one .safetensors file)
  tuned: string; // fine-tuned or merged model with the same architecture
  out: string; // adapter folder to write
  method?: ExtractMethod; // default lora
  r?: number; // LoRA rank, or the r MoRA's r̂ derives from (default 8)
  moraType?: MoraType; // default 6
  targetModules?: ExtractTargets; // default all-linear: every linear projection inside the decoder layers
  dtype?: AdapterDtype; // adapter tensor dtype, default F32
  force?: boolean; // replace an existing output folder
  signal?: AbortSignal;
  onProgress?: (p: ExtractProgress) => void;
  /** Randomized SVD settings and the exact-SVD cut-off for LoRA (extractLora.ts defaults). */
  svd?: LoraFitOptions;
}

export interface ExtractProgress {
  done: number; // targets finished
  total: number;
  module: string; // the module just finished
}

export interface ExtractedModule {
  path: string;
  outF: number;
  inF: number;
  rank: number; // r (LoRA) or r̂ (MoRA)
  deltaNorm: number; // ‖ΔW‖_F
  residual: number; // ‖ΔW − ΔW(adapter)‖_F, with the factors as stored
  relError: number; // residual / ‖ΔW‖_F (0 for an unchanged module)
  unchanged: boolean; // ΔW is exactly zero: left out of the adapter
  exactSvd?: boolean; // LoRA: exact SVD rather than randomized
}

export interface ExtractResult {
  out: string;
  method: ExtractMethod;
  r: number;
  moraType?: MoraType;
  dtype: AdapterDtype;
  modules: ExtractedModule[]; // every target, unchanged ones included, in base order
  extracted: number; // modules written
  relError: number; // overall sqrt(Σ residual²) / sqrt(Σ ‖ΔW‖²)
  seconds: number;
}

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

async function openModel(which: string, dir: string): Promise<ModelWeights> {
  try {
    return await ModelWeights.open(dir);
  } catch (err) {
    const e = err as Error & { kind?: string };
    throw new ExtractError('InvalidModel', `${which} ${dir}: ${e.name}${e.kind ? ` ${e.kind}` : ''}: ${e.message}`, { cause: err });
  }
}

/** The values the adapter file will hold: rounded through the storage dtype, refused if that overflows. */
function stored(x: Float32Array, dtype: AdapterDtype, where: string): Float32Array {
  const y = dtype === 'F32' ? x : bytesToFloat32(float32ToBytes(x, dtype), dtype);
  for (let i = 0; i < y.length; i++) {
    if (!Number.isFinite(y[i])) throw new ExtractError('NonFinite', `${where}: a factor overflows ${dtype} (${x[i]})`);
  }
  return y;
}

/**
 * ΔW [out, in] in float64 (Conv1D weights are stored [in, out] and transposed here) in `scratch` (at least out·in
 * long; valid until the next call), and ‖ΔW‖_F. One model's stored bytes are read at a time.
 */
async function deltaOf(base: ModelWeights, tuned: ModelWeights, t: ExtractTarget, scratch: Float64Array): Promise<{ dW: Float64Array; norm: number }> {
  const d = scratch.subarray(0, t.outF * t.inF);
  storeValues(d, await tuned.readBytes(t.name), tuned.info(t.name).dtype);
  const { sumSq, firstNonFinite } = subtractValues(d, await base.readBytes(t.name), base.info(t.name).dtype);
  if (firstNonFinite >= 0) throw new ExtractError('NonFinite', `${t.name}: ΔW has a non-finite value at index ${firstNonFinite}`);
  if (!t.fanInFanOut) return { dW: d, norm: Math.sqrt(sumSq) };
  // The transposed copy's norm is summed in its own order, as it always was.
  const dW = transpose(d, t.inF, t.outF);
  return { dW, norm: frobeniusNorm(dW) };
}

/** Fits one module; returns its adapter tensors (as stored) and the residual of the stored fit. */
function fitModule(dW: Float64Array, t: ExtractTarget, opts: Required<Pick<ExtractOptions, 'method' | 'moraType' | 'dtype'>> & { svd?: LoraFitOptions }) {
  if (opts.method === 'mora') {
    const M = stored(Float32Array.from(moraFit(dW, t.inF, t.outF, t.rank, opts.moraType)), opts.dtype, t.path);
    const module: AdapterModule = { path: t.path, A: M, aShape: [t.rank, t.rank], B: M, bShape: [t.rank, t.rank] };
    return { module, residual: moraResidual(dW, M, t.rank, t.inF, t.outF, opts.moraType) };
  }
  const fit = loraFit(dW, t.outF, t.inF, t.rank, opts.svd);
  const A = stored(fit.A, opts.dtype, t.path);
  const B = stored(fit.B, opts.dtype, t.path);
  const module: AdapterModule = { path: t.path, A, aShape: [t.rank, t.inF], B, bShape: [t.outF, t.rank] };
  return { module, residual: loraResidual(dW, t.outF, t.inF, A, B, t.rank), exactSvd: fit.exact };
}

/**
 * target_modules for the config: the short names (q_proj, …) when they select exactly the extracted modules in the
 * base model, else the full module paths (a list entry equal to the path matches only that module in PEFT).
 */
function targetModulesFor(base: ModelWeights, paths: string[]): string[] {
  const short = [...new Set(paths.map((p) => p.slice(p.lastIndexOf('.') + 1)))].sort();
  const chosen = new Set(paths);
  const selected = base.names().filter((n) => n.endsWith('.weight') && base.info(n).shape.length === 2).map((n) => n.slice(0, -'.weight'.length));
  return selected.every((p) => chosen.has(p) || !matchesTarget(short, p)) ? short : [...paths];
}

/** Extracts the adapter and writes it to opts.out (atomically); see the file comment. */
export async function extractAdapter(opts: ExtractOptions): Promise<ExtractResult> {
  const started = performance.now();
  const method = opts.method ?? 'lora';
  const r = opts.r ?? 8;
  const moraType = opts.moraType ?? 6;
  const dtype = opts.dtype ?? 'F32';
  const targets = opts.targetModules ?? 'all-linear';
  checkExtractOptions(method, r, moraType, targets);
  if (!['F32', 'BF16', 'F16'].includes(dtype)) throw new ExtractError('BadOption', `dtype must be F32, BF16 or F16, not '${String(dtype)}'`);
  const out = path.resolve(opts.out);
  checkOutputPlacement(out, [opts.base, opts.tuned]);
  if (!opts.force && (await exists(out))) throw new ExtractError('OutputExists', `${out} already exists (use force to replace it)`);
  const cancelled = () => {
    if (opts.signal?.aborted) throw new ExtractError('Cancelled', 'extraction cancelled');
  };
  cancelled();
  if (path.resolve(opts.base) === path.resolve(opts.tuned)) {
    throw new ExtractError('NoDifference', `base and tuned are the same model (${opts.base})`);
  }

  const base = await openModel('base', opts.base);
  try {
    const tuned = await openModel('tuned', opts.tuned);
    try {
      const dirOf = async (p: string) => ((await fs.stat(p)).isDirectory() ? p : path.dirname(p));
      await checkSameArchitecture(await dirOf(opts.base), await dirOf(opts.tuned));
      const plan = planExtract(base, tuned, { method, r, moraType, targets });
      const modules: ExtractedModule[] = [];
      const written: AdapterModule[] = [];
      const scratch = new Float64Array(Math.max(...plan.map((t) => t.outF * t.inF)));
      for (const [i, t] of plan.entries()) {
        cancelled();
        const { dW, norm: deltaNorm } = await deltaOf(base, tuned, t, scratch);
        const info = { path: t.path, outF: t.outF, inF: t.inF, rank: t.rank, deltaNorm };
        if (deltaNorm === 0) {
          modules.push({ ...info, residual: 0, relError: 0, unchanged: true });
        } else {
          const { module, residual, exactSvd } = fitModule(dW, t, { method, moraType, dtype, svd: opts.svd });
          written.push(module);
          modules.push({ ...info, residual, relError: residual / deltaNorm, unchanged: false, exactSvd });
        }
        opts.onProgress?.({ done: i + 1, total: plan.length, module: t.path });
        // Let cancellation, progress and other I/O through between tensors.
        await new Promise((res) => setImmediate(res));
      }
      if (written.length === 0) {
        throw new ExtractError('NoDifference', `all ${plan.length} target weights are identical in ${opts.base} and ${opts.tuned}; there is no ΔW to extract`);
      }
      cancelled();
      const config = defaultAdapterConfig({
        r,
        lora_alpha: r, // LoRA scaling alpha / r = 1: B·A is the ΔW approximation itself (MoRA ignores it)
        target_modules: targetModulesFor(base, written.map((m) => m.path)),
        base_model_name_or_path: path.resolve(opts.base),
        fan_in_fan_out: plan[0].fanInFanOut,
        use_mora: method === 'mora',
        mora_type: moraType,
      });
      await writeAdapter(out, config, written, { dtype, replace: opts.force === true });
      const sq = (f: (m: ExtractedModule) => number) => Math.sqrt(modules.reduce((a, m) => a + f(m) ** 2, 0));
      return {
        out, method, r, moraType: method === 'mora' ? moraType : undefined, dtype, modules, extracted: written.length,
        relError: sq((m) => m.residual) / sq((m) => m.deltaNorm), seconds: (performance.now() - started) / 1000,
      };
    } finally {
      await tuned.close();
    }
  } finally {
    await base.close();
  }
}
