// Merge planning: which base tensor receives which adapter modules, validated completely before anything is written.
// The plan is pure bookkeeping over tensor headers; no weights are read here.
import type { Dtype, TensorInfo } from '../safetensors';
import type { Adapter, SavedTensor } from './peftAdapter';
import { checkModule, type AdapterModule } from './deltaWeight';
import { AdapterError } from './errors';
import { MergeError, listSome, type MergeErrorKind } from './mergeError';
import { resolveBaseWeightName } from './targets';

export type MergeMethod = 'linear' | 'ties';
export type OutputDtype = 'keep' | 'f32' | 'f16' | 'bf16';

/** One adapter taking part in a merge, with its weight (1 for a plain merge). */
export interface MergeSource {
  adapter: Adapter;
  weight: number;
}

/** The part of ModelWeights the planner needs, so tests can plan against synthetic headers. */
export interface BaseView {
  shards: string[];
  names(): string[];
  info(name: string): TensorInfo;
  shardOf(name: string): string;
}

export interface Contribution {
  source: number; // index into the sources
  module: AdapterModule;
}

export interface TensorPlan {
  name: string;
  info: TensorInfo;
  shard: string;
  outDtype: Dtype;
  contributions: Contribution[]; // ΔW to add; none and no replacement: copied unchanged
  replacement?: SavedTensor; // a modules_to_save / bias tensor the adapter trained in full: it replaces the base one
}

export interface MergePlan {
  method: MergeMethod;
  density: number;
  tensors: TensorPlan[]; // every base tensor, in base order
  byShard: Map<string, TensorPlan[]>;
  merged: number; // tensors that receive a ΔW or a replacement
  dora: boolean; // the single source is a DoRA adapter: merge through mergeWeight
}

const floatDtypes = new Set<Dtype>(['F64', 'F32', 'F16', 'BF16']);
const outDtypes: Record<Exclude<OutputDtype, 'keep'>, Dtype> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** The adapter layer's shape/rank errors, re-raised as MergeErrors of the same kind with the adapter named. */
export function asMergeError(err: unknown, where: string): unknown {
  if (!(err instanceof AdapterError)) return err;
  const kind: MergeErrorKind =
    err.kind === 'RankMismatch' || err.kind === 'ShapeMismatch'
      ? err.kind
      : (err.kind as string) === 'NonFinite'
        ? 'NonFiniteResult'
        : 'InvalidAdapter';
  return new MergeError(kind, `${where}: ${err.message}`, { cause: err });
}

/** Throws a named error when the module's tensors cannot be the ΔW of a base weight of this shape. */
function checkAgainstBase(adapter: Adapter, m: AdapterModule, target: string, info: TensorInfo): void {
  if (info.shape.length !== 2) {
    throw new MergeError('ShapeMismatch', `${adapter.dir}: ${m.path}: base tensor ${target} has shape [${info.shape}], expected a 2-D weight`);
  }
  try {
    checkModule(adapter.config, m, info.shape);
  } catch (err) {
    throw asMergeError(err, adapter.dir);
  }
}

function checkOptions(sources: MergeSource[], method: MergeMethod, density: number): void {
  if (sources.length === 0) throw new MergeError('BadOption', 'no adapters to merge');
  if (method !== 'linear' && method !== 'ties') throw new MergeError('BadOption', `unknown merge method '${method}'`);
  if (method === 'ties' && !(density >= 0 && density <= 1)) {
    throw new MergeError('BadOption', `density must be in [0, 1], got ${density}`);
  }
  for (const s of sources) {
    if (!Number.isFinite(s.weight)) throw new MergeError('BadOption', `${s.adapter.dir}: weight must be a finite number`);
    const dora = s.adapter.config.use_dora === true;
    // DoRA rescales W + ΔW by a per-row norm, so it is not a ΔW that can be summed or trimmed with others.
    if (dora && sources.length > 1) {
      throw new MergeError('UnsupportedCombination', `${s.adapter.dir}: DoRA adapters can only be merged on their own`);
    }
    if (dora && (s.weight !== 1 || method === 'ties')) {
      throw new MergeError('UnsupportedCombination', `${s.adapter.dir}: a DoRA adapter merges with weight 1 and method linear only`);
    }
  }
}

/**
 * Full tensors saved by the adapter (modules_to_save, trained biases) replace their base tensors, as merge_and_unload
 * swaps in the trained module copies. Only a single-adapter merge can do that unambiguously.
 */
function planReplacements(
  base: BaseView,
  nameSet: Set<string>,
  sources: MergeSource[],
  contributions: Map<string, Contribution[]>,
): Map<string, SavedTensor> {
  const out = new Map<string, SavedTensor>();
  for (const s of sources) {
    for (const [savedName, t] of s.adapter.saved ?? []) {
      if (sources.length > 1) {
        throw new MergeError('UnsupportedCombination', `${s.adapter.dir}: saved full tensors (${savedName}) cannot be combined with other adapters`);
      }
      // PEFT saves a targeted layer's trained bias under the wrapper's `<module>.base_layer.bias`; merge_and_unload
      // unwraps the layer, so it lands on `<module>.bias`. Then the same prefix tolerance as module weights applies:
      // resolve '<name minus its last segment>' with the suffix swapped in.
      const unwrapped = savedName.replace(/\.base_layer(?=\.)/g, '');
      const dot = unwrapped.lastIndexOf('.');
      const suffix = unwrapped.slice(dot + 1);
      const name = resolveBaseWeightName(unwrapped.slice(0, dot), (n) => nameSet.has(`${n.slice(0, -'weight'.length)}${suffix}`))
        ?.replace(/weight$/, suffix);
      if (dot <= 0 || name === undefined) {
        throw new MergeError('MissingTargetTensor', `${s.adapter.dir}: saved tensor ${savedName} has no counterpart in the base model`);
      }
      const info = base.info(name);
      if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
        throw new MergeError('ShapeMismatch', `${s.adapter.dir}: saved tensor ${savedName} is [${t.shape}], base ${name} is [${info.shape}]`);
      }
      if (!floatDtypes.has(info.dtype)) throw new MergeError('UnsupportedDtype', `base tensor ${name} is ${info.dtype}`);
      if (contributions.has(name)) throw new MergeError('InvalidAdapter', `${s.adapter.dir}: ${name} is both adapted and saved in full`);
      out.set(name, t);
    }
  }
  return out;
}

/** Validates every source against the base headers and maps each base tensor to the ΔW it receives. */
export function planMerge(
  base: BaseView,
  sources: MergeSource[],
  opts: { method?: MergeMethod; density?: number; dtype?: OutputDtype } = {},
): MergePlan {
  const method = opts.method ?? 'linear';
  const density = opts.density ?? 1;
  const dtype = opts.dtype ?? 'keep';
  checkOptions(sources, method, density);
  if (dtype !== 'keep' && !(dtype in outDtypes)) throw new MergeError('BadOption', `unknown output dtype '${dtype}'`);

  const names = base.names();
  const nameSet = new Set(names);
  const contributions = new Map<string, Contribution[]>();
  sources.forEach((s, source) => {
    const modules = [...s.adapter.modules.values()];
    if (modules.length === 0) throw new MergeError('InvalidAdapter', `${s.adapter.dir}: the adapter holds no LoRA/MoRA modules`);
    const missing: string[] = [];
    for (const m of modules) {
      const target = resolveBaseWeightName(m.path, (n) => nameSet.has(n));
      if (target === undefined) {
        missing.push(`${m.path}.weight`);
        continue;
      }
      const info = base.info(target);
      if (!floatDtypes.has(info.dtype)) {
        throw new MergeError('UnsupportedDtype', `base tensor ${target} is ${info.dtype}; only float weights can be merged`);
      }
      checkAgainstBase(s.adapter, m, target, info);
      const list = contributions.get(target) ?? [];
      if (list.some((c) => c.source === source)) {
        throw new MergeError('InvalidAdapter', `${s.adapter.dir}: two modules map to base tensor ${target}`);
      }
      list.push({ source, module: m });
      contributions.set(target, list);
    }
    if (missing.length === modules.length) {
      throw new MergeError(
        'ArchitectureMismatch',
        `${s.adapter.dir}: none of its ${modules.length} modules exist in the base model (e.g. ${missing[0]}); ` +
          `it was made for another architecture`,
      );
    }
    if (missing.length > 0) {
      throw new MergeError('MissingTargetTensor', `${s.adapter.dir}: base model lacks ${listSome(missing)}`);
    }
  });

  const replacements = planReplacements(base, nameSet, sources, contributions);

  const tensors: TensorPlan[] = [];
  const byShard = new Map<string, TensorPlan[]>(base.shards.map((s) => [s, []]));
  for (const name of names) {
    const info = base.info(name);
    const outDtype = dtype !== 'keep' && floatDtypes.has(info.dtype) ? outDtypes[dtype] : info.dtype;
    const t: TensorPlan = {
      name,
      info,
      shard: base.shardOf(name),
      outDtype,
      contributions: contributions.get(name) ?? [],
      replacement: replacements.get(name),
    };
    tensors.push(t);
    if (!byShard.has(t.shard)) byShard.set(t.shard, []);
    byShard.get(t.shard)!.push(t);
  }
  const dora = sources.length === 1 && sources[0].adapter.config.use_dora === true;
  return { method, density, tensors, byShard, merged: contributions.size + replacements.size, dora };
}
