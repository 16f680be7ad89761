// Extraction planning: which weights of the two models become adapter modules, checked from the safetensors headers
// alone (names, shapes, dtypes) before any tensor is read, plus the option and output-folder checks.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Dtype, TensorInfo } from '../safetensors';
import { classifyLinear } from '../model/moduleTree';
import { ExtractError } from './extractError';
import { listSome } from './mergeError';
import { moraRank, type MoraType } from './mora';
import { matchesTarget } from './targets';

export type ExtractMethod = 'lora' | 'mora';
export type ExtractTargets = string[] | 'all-linear';

/** The part of ModelWeights the planner reads, so tests can plan against synthetic headers. */
export interface HeaderView {
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
}

/** One weight to turn into an adapter module. */
export interface ExtractTarget {
  name: string; // tensor name, e.g. model.layers.0.self_attn.q_proj.weight
  path: string; // module path (the name without `.weight`), as PEFT keys and merges resolve it
  outF: number;
  inF: number;
  fanInFanOut: boolean; // GPT-2 Conv1D: stored [in, out]
  rank: number; // r for LoRA, r̂ for MoRA
}

const floatDtypes = new Set<Dtype>(['F64', 'F32', 'F16', 'BF16']);
const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Whether a 2-D `.weight` is a target. "all-linear" means every linear projection inside the repeated blocks (a
 * numeric layer index in its path): the module tree's linear classification minus embeddings, norms and the head.
 */
function isTarget(modulePath: string, info: TensorInfo, targets: ExtractTargets): boolean {
  if (info.shape.length !== 2) return false;
  if (targets === 'all-linear') return /(^|\.)\d+\./.test(modulePath) && classifyLinear(modulePath, info) !== undefined;
  return matchesTarget(targets, modulePath);
}

/** Validates the options that do not depend on the models. */
export function checkExtractOptions(method: ExtractMethod, r: number, moraType: MoraType, targets: ExtractTargets): void {
  if (method !== 'lora' && method !== 'mora') throw new ExtractError('BadOption', `method must be lora or mora, not '${String(method)}'`);
  if (method === 'mora' && moraType !== 1 && moraType !== 6) throw new ExtractError('BadOption', `MoRA type must be 1 or 6, not ${String(moraType)}`);
  if (!Number.isInteger(r) || r < 1) throw new ExtractError('BadRank', `r must be an integer ≥ 1, got ${r}`);
  if (targets !== 'all-linear' && (!Array.isArray(targets) || targets.length === 0 || targets.some((t) => typeof t !== 'string' || t === ''))) {
    throw new ExtractError('BadOption', `targets must be 'all-linear' or a non-empty list of module names`);
  }
}

/** The target weights, in base order, each checked in both models; throws a named error on the first problem. */
export function planExtract(
  base: HeaderView,
  tuned: HeaderView,
  opts: { method: ExtractMethod; r: number; moraType: MoraType; targets: ExtractTargets },
): ExtractTarget[] {
  const { method, r, moraType, targets } = opts;
  const candidates = (w: HeaderView) =>
    w.names().filter((n) => n.endsWith('.weight') && isTarget(n.slice(0, -'.weight'.length), w.info(n), targets));
  const names = [...new Set([...candidates(base), ...candidates(tuned)])];
  if (names.length === 0) {
    throw new ExtractError('NoTargets', `no 2-D weight matches ${targets === 'all-linear' ? 'all-linear' : targets.join(', ')}`);
  }
  const missing = names.filter((n) => !base.has(n) || !tuned.has(n));
  if (missing.length > 0) {
    const where = (n: string) => `${n} (only in ${base.has(n) ? 'base' : 'tuned'})`;
    throw new ExtractError('MissingTarget', `target weights missing in one model: ${listSome(missing.map(where))}`);
  }
  const out: ExtractTarget[] = [];
  for (const name of names) {
    const bi = base.info(name);
    const ti = tuned.info(name);
    if (bi.shape.length !== ti.shape.length || bi.shape.some((d, i) => d !== ti.shape[i])) {
      throw new ExtractError('ShapeMismatch', `${name}: base ${shapeStr(bi.shape)} vs tuned ${shapeStr(ti.shape)}; the models differ in architecture`);
    }
    for (const [which, info] of [['base', bi], ['tuned', ti]] as const) {
      if (!floatDtypes.has(info.dtype)) throw new ExtractError('UnsupportedDtype', `${which} ${name} is ${info.dtype}; only float weights can be extracted`);
    }
    const modulePath = name.slice(0, -'.weight'.length);
    const fanInFanOut = classifyLinear(modulePath, bi)?.fanInFanOut ?? false;
    const [outF, inF] = fanInFanOut ? [bi.shape[1], bi.shape[0]] : [bi.shape[0], bi.shape[1]];
    if (r > Math.min(outF, inF)) throw new ExtractError('BadRank', `r=${r} exceeds min(out, in) = ${Math.min(outF, inF)} of ${modulePath} [${outF}, ${inF}]`);
    let rank = r;
    if (method === 'mora') {
      try {
        rank = moraRank(inF, outF, r, moraType);
      } catch (err) {
        throw new ExtractError('BadRank', `${modulePath}: ${(err as Error).message}`, { cause: err });
      }
    }
    out.push({ name, path: modulePath, outF, inF, fanInFanOut, rank });
  }
  // PEFT has one fan_in_fan_out per config: Conv1D and Linear targets cannot share an adapter.
  if (out.some((t) => t.fanInFanOut) && out.some((t) => !t.fanInFanOut)) {
    throw new ExtractError('BadOption', 'the targets mix Conv1D ([in, out]) and Linear ([out, in]) weights; extract them separately');
  }
  return out;
}

/** Refuses an output that is an input, holds one (a forced replace would delete it) or lies inside one. */
export function checkOutputPlacement(out: string, inputs: string[]): void {
  const within = (child: string, parent: string) => {
    const rel = path.relative(path.resolve(parent), path.resolve(child));
    // A child named '..x' is inside too: only a first segment of exactly '..' climbs out.
    return !(rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel));
  };
  for (const input of inputs) {
    if (within(input, out)) throw new ExtractError('OutputIsInput', `output ${out} would replace the input ${input}`);
    if (within(out, input)) throw new ExtractError('OutputIsInput', `output ${out} lies inside the input ${input}, which must stay unmodified`);
  }
}

async function modelType(dir: string): Promise<string | undefined> {
  try {
    const cfg: unknown = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
    const t = (cfg as { model_type?: unknown })?.model_type;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Refuses two model folders whose config.json name different model types (absent configs are not checked). */
export async function checkSameArchitecture(baseDir: string, tunedDir: string): Promise<void> {
  const [a, b] = await Promise.all([modelType(baseDir), modelType(tunedDir)]);
  if (a !== undefined && b !== undefined && a !== b) {
    throw new ExtractError('ArchitectureMismatch', `base ${baseDir} is model_type ${a} but tuned ${tunedDir} is ${b}`);
  }
}
