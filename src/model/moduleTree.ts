// The module tree of a model, built from safetensors header entries only (names, dtypes, shapes; no weights),
// plus the pure logic behind the Model view: which modules are trainable linear layers, target presets,
// "same module type in all layers", PEFT target_modules round trips and trainable-parameter counts.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { matchesTarget, moraRank } from '../adapters';
import { ModelWeights } from '../safetensors';
import type { AdapterMethod } from '../protocol/trainer';

/** The header facts the tree needs about one tensor. */
export interface TensorMeta {
  dtype: string;
  shape: readonly number[];
}

/** A parameter owned directly by a module, e.g. the `weight` of `model.layers.0.self_attn.q_proj`. */
export interface ModuleParam {
  name: string;
  dtype: string;
  shape: number[];
  params: number;
}

/** A trainable linear layer: the kind of module an adapter can target. */
export interface LinearInfo {
  path: string;
  inFeatures: number;
  outFeatures: number;
  dtype: string;
  /** GPT-2 Conv1D stores its weight as [in, out] instead of torch.nn.Linear's [out, in]. */
  fanInFanOut: boolean;
}

export interface ModuleNode {
  /** Last path segment; '' for the root. */
  name: string;
  /** Dotted module path; '' for the root. */
  path: string;
  children: ModuleNode[];
  tensors: ModuleParam[];
  /** Parameters in this module and everything below it. */
  params: number;
  /** Linear modules in this subtree (this one included). */
  linearCount: number;
  linear?: LinearInfo;
}

/** Conv1D layer names of GPT-2 style checkpoints (weights stored transposed). */
const conv1dNames = new Set(['c_attn', 'c_proj', 'c_fc', 'q_attn']);
/** Modules that have 2-D weights but are not adapter targets: embeddings, norms and the output head. */
const notLinear = /embed|^wte$|^wpe$|norm|^ln(_|$)|^lm_head$/i;

const isIndex = (s: string) => /^\d+$/.test(s);

export function shapeParams(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Numeric siblings (layer indices) sort numerically; named siblings keep header order. */
function siblingOrder(a: ModuleNode, b: ModuleNode): number {
  const na = isIndex(a.name);
  const nb = isIndex(b.name);
  if (na && nb) return Number(a.name) - Number(b.name);
  if (na !== nb) return na ? -1 : 1;
  return 0;
}

/** Classifies a module from its `.weight`; returns undefined when it is not a trainable linear layer. */
export function classifyLinear(modulePath: string, weight: TensorMeta): LinearInfo | undefined {
  if (weight.shape.length !== 2) return undefined;
  const segments = modulePath.split('.');
  const last = segments[segments.length - 1];
  if (modulePath === '' || notLinear.test(last) || segments.includes('embeddings')) return undefined;
  const fanInFanOut = conv1dNames.has(last);
  // nn.Linear: [out, in]; Conv1D: [in, out].
  const [a, b] = weight.shape;
  return fanInFanOut
    ? { path: modulePath, inFeatures: a, outFeatures: b, dtype: weight.dtype, fanInFanOut }
    : { path: modulePath, inFeatures: b, outFeatures: a, dtype: weight.dtype, fanInFanOut };
}

/** Builds the nested module tree from header entries such as `ModelWeights.names()` / `info(name)`. */
export function buildModuleTree(tensors: Iterable<[string, TensorMeta]>): ModuleNode {
  const root: ModuleNode = { name: '', path: '', children: [], tensors: [], params: 0, linearCount: 0 };
  const index = new Map<string, ModuleNode>([['', root]]);
  const nodeFor = (path: string): ModuleNode => {
    const found = index.get(path);
    if (found) return found;
    const dot = path.lastIndexOf('.');
    const parent = nodeFor(dot < 0 ? '' : path.slice(0, dot));
    const node: ModuleNode = { name: path.slice(dot + 1), path, children: [], tensors: [], params: 0, linearCount: 0 };
    parent.children.push(node);
    index.set(path, node);
    return node;
  };
  for (const [name, meta] of tensors) {
    const dot = name.lastIndexOf('.');
    const owner = nodeFor(dot < 0 ? '' : name.slice(0, dot));
    const shape = [...meta.shape];
    owner.tensors.push({ name: name.slice(dot + 1), dtype: meta.dtype, shape, params: shapeParams(shape) });
  }
  const finish = (node: ModuleNode): void => {
    node.children.sort(siblingOrder);
    const weight = node.tensors.find((t) => t.name === 'weight');
    if (weight) node.linear = classifyLinear(node.path, weight);
    node.params = node.tensors.reduce((s, t) => s + t.params, 0);
    node.linearCount = node.linear ? 1 : 0;
    for (const c of node.children) {
      finish(c);
      node.params += c.params;
      node.linearCount += c.linearCount;
    }
  };
  finish(root);
  return root;
}

/** An opened model: the folder training should use (or the lone weights file), its tree and linear modules. */
export interface OpenedModuleTree {
  dir: string;
  root: ModuleNode;
  linear: LinearInfo[];
}

/**
 * Reads only the headers of a model folder, a .safetensors file or a *.safetensors.index.json. A weights file next
 * to a config.json stands for its folder: training needs the folder, and one shard alone is only part of the model.
 */
export async function openModuleTree(p: string): Promise<OpenedModuleTree> {
  const folder = path.dirname(p);
  const isFile = (await fs.stat(p).catch(() => null))?.isFile() ?? false;
  const hasConfig = (): Promise<boolean> => fs.stat(path.join(folder, 'config.json')).then(() => true, () => false);
  // A folder whose weights do not open as one model (several unrelated files) falls back to the file itself.
  const asFolder = isFile && p.endsWith('.safetensors') && (await hasConfig()) ? await ModelWeights.open(folder).catch(() => null) : null;
  const weights = asFolder ?? (await ModelWeights.open(p));
  try {
    const root = buildModuleTree(weights.names().map((n) => [n, weights.info(n)]));
    const dir = asFolder || (isFile && p.endsWith('.index.json')) ? folder : p;
    return { dir, root, linear: linearModules(root) };
  } finally {
    await weights.close();
  }
}

/** Every linear module below `node`, in tree order. */
export function linearModules(node: ModuleNode): LinearInfo[] {
  const out: LinearInfo[] = [];
  const walk = (n: ModuleNode) => {
    if (n.linear) out.push(n.linear);
    n.children.forEach(walk);
  };
  walk(node);
  return out;
}

/** Finds a node by dotted path. */
export function findNode(root: ModuleNode, path: string): ModuleNode | undefined {
  if (path === '') return root;
  let node: ModuleNode | undefined = root;
  let prefix = '';
  for (const seg of path.split('.')) {
    prefix = prefix ? `${prefix}.${seg}` : seg;
    node = node.children.find((c) => c.path === prefix);
    if (!node) return undefined;
  }
  return node;
}

/** True when all children are layer indices: the node is a stack of repeated blocks (`layers`, `h`). */
export function isLayerStack(node: ModuleNode): boolean {
  return node.children.length > 1 && node.children.every((c) => isIndex(c.name));
}

/** The module "type" with layer indices wildcarded: model.layers.3.self_attn.q_proj → model.layers.*.self_attn.q_proj. */
export function moduleTypeKey(path: string): string {
  return path
    .split('.')
    .map((s) => (isIndex(s) ? '*' : s))
    .join('.');
}

/** All linear modules of the same type as `path`, across every layer. */
export function sameTypeInAllLayers(linear: readonly LinearInfo[], path: string): string[] {
  const key = moduleTypeKey(path);
  return linear.filter((l) => moduleTypeKey(l.path) === key).map((l) => l.path);
}

export type PresetId = 'attention-qv' | 'attention-all' | 'mlp' | 'all-linear';

export const presets: readonly { id: PresetId; label: string; detail: string }[] = [
  { id: 'attention-qv', label: 'Attention q, v', detail: 'q_proj + v_proj (GPT-2: fused c_attn) — the MoRA paper default' },
  { id: 'attention-all', label: 'Attention all', detail: 'q, k, v and output projections' },
  { id: 'mlp', label: 'MLP', detail: 'gate/up/down (GPT-2: c_fc, mlp.c_proj)' },
  { id: 'all-linear', label: 'All linear', detail: 'every linear layer except the output head' },
];

export function isPresetId(x: unknown): x is PresetId {
  return presets.some((p) => p.id === x);
}

/** Query/value projections, under their LLaMA/Qwen2, BERT, Phi-3, Falcon and GPT-2 (fused qkv) names. */
const qvNames = new Set(['q_proj', 'v_proj', 'query', 'value', 'c_attn', 'qkv_proj', 'query_key_value', 'Wqkv']);
const mlpNames = new Set(['gate_proj', 'up_proj', 'down_proj', 'fc1', 'fc2', 'c_fc', 'w1', 'w2', 'w3']);
const inAttention = (segs: string[]) => segs.slice(0, -1).some((s) => /attn|attention/i.test(s));
const inMlp = (segs: string[]) => segs.slice(0, -1).some((s) => /^(mlp|ffn|feed_forward)$/i.test(s));

/** The linear modules a preset selects. */
export function presetSelection(linear: readonly LinearInfo[], preset: PresetId): string[] {
  const pick = (l: LinearInfo): boolean => {
    const segs = l.path.split('.');
    const last = segs[segs.length - 1];
    switch (preset) {
      case 'attention-qv':
        return qvNames.has(last);
      case 'attention-all':
        return inAttention(segs) || qvNames.has(last) || /^(k_proj|o_proj|key|out_proj)$/.test(last);
      case 'mlp':
        return !inAttention(segs) && (inMlp(segs) || mlpNames.has(last));
      case 'all-linear':
        return true;
    }
  };
  return linear.filter(pick).map((l) => l.path);
}

/**
 * Turns a selection into a compact PEFT `target_modules` list. PEFT matches a list entry when the module path
 * equals it or ends with `.entry`; each selected module gets the shortest suffix that matches only selected
 * modules (so `c_proj` becomes `attn.c_proj` when only GPT-2's attention projections are selected).
 */
export function selectionToTargets(linear: readonly LinearInfo[], selected: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const covered = new Set<string>();
  for (const l of linear) {
    if (!selected.has(l.path) || covered.has(l.path)) continue;
    const segs = l.path.split('.');
    for (let k = 1; k <= segs.length; k++) {
      const suffix = segs.slice(-k).join('.');
      const matches = linear.filter((m) => suffixMatches(suffix, m.path));
      if (matches.every((m) => selected.has(m.path))) {
        out.push(suffix);
        matches.forEach((m) => covered.add(m.path));
        break;
      }
    }
  }
  return out;
}

function suffixMatches(target: string, path: string): boolean {
  return path === target || path.endsWith(`.${target}`);
}

/** The inverse of selectionToTargets, with PEFT semantics (adapters' matchesTarget): suffixes, "all-linear" or a regex. */
export function targetsToSelection(linear: readonly LinearInfo[], targets: readonly string[] | string): string[] {
  const t = typeof targets === 'string' ? targets : [...targets];
  return linear.filter((l) => matchesTarget(t, l.path, { isLinear: true })).map((l) => l.path);
}

export interface MethodSpec {
  method: AdapterMethod;
  r: number;
  moraType: 1 | 6;
}

/** Trainable parameters one module adds: MoRA r̂² (the square matrix M), LoRA (in + out)·r (A and B). */
export function moduleTrainableParams(l: LinearInfo, spec: MethodSpec): number {
  if (spec.method === 'lora') return (l.inFeatures + l.outFeatures) * spec.r;
  const rHat = moraRank(l.inFeatures, l.outFeatures, spec.r, spec.moraType);
  return rHat * rHat;
}

export interface SelectionSummary {
  modules: number;
  trainable: number;
  total: number;
  /** trainable / total · 100 */
  percent: number;
}

export function summarizeSelection(root: ModuleNode, selected: ReadonlySet<string>, spec: MethodSpec): SelectionSummary {
  const chosen = linearModules(root).filter((l) => selected.has(l.path));
  const trainable = chosen.reduce((s, l) => s + moduleTrainableParams(l, spec), 0);
  const total = root.params;
  return { modules: chosen.length, trainable, total, percent: total > 0 ? (trainable / total) * 100 : 0 };
}

/** 1234567 → "1.23M": compact counts for tree descriptions. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}
