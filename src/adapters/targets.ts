/**
 * Which modules an adapter touches and with which rank/alpha, following PEFT's rules (tuners_utils
 * `check_target_module_exists`, utils `get_pattern_key`), plus the mapping between PEFT tensor keys, module paths
 * and base-model weight names.
 */
import { AdapterError } from './errors';
import { loraScaling } from './lora';
import { pythonRegex, type AdapterConfig } from './peftConfig';

const regexCache = new Map<string, RegExp>();
function cached(src: string): RegExp {
  let re = regexCache.get(src);
  if (!re) {
    re = new RegExp(src);
    regexCache.set(src, re);
  }
  return re;
}

/** The first pattern key (insertion order) that matches `(.*\.)?key$` anchored at the start, as PEFT's get_pattern_key. */
export function patternKey(keys: Iterable<string>, modulePath: string): string | undefined {
  for (const key of keys) {
    if (cached(`^(?:.*\\.)?(?:${pythonRegex(key)})$`).test(modulePath)) return key;
  }
  return undefined;
}

/** The LoRA rank r of one module: its rank_pattern override, or cfg.r. (For MoRA this is the r that r̂ derives from.) */
export function moduleRank(cfg: AdapterConfig, modulePath: string): number {
  const key = patternKey(Object.keys(cfg.rank_pattern), modulePath);
  return key === undefined ? cfg.r : cfg.rank_pattern[key];
}

/** lora_alpha of one module: its alpha_pattern override, or cfg.lora_alpha. */
export function moduleAlpha(cfg: AdapterConfig, modulePath: string): number {
  const key = patternKey(Object.keys(cfg.alpha_pattern), modulePath);
  return key === undefined ? cfg.lora_alpha : cfg.alpha_pattern[key];
}

/** ΔW scaling of one module: 1 for MoRA, alpha/r (alpha/√r with rsLoRA) for LoRA and DoRA. */
export function moduleScaling(cfg: AdapterConfig, modulePath: string): number {
  if (cfg.use_mora) return 1;
  return loraScaling(moduleAlpha(cfg, modulePath), moduleRank(cfg, modulePath), cfg.use_rslora);
}

export interface TargetOptions {
  /** Whether the module is a Linear/Conv1D layer; only "all-linear" needs it. Guessed from the name when omitted. */
  isLinear?: boolean;
  /** Last name component of the output head that "all-linear" skips (PEFT: the output embedding). */
  outputHead?: string;
}

// Guess for "all-linear" when the caller cannot tell the layer type: 2-D weights that are not embeddings or norms.
const NOT_LINEAR = /(^|\.)(embed_tokens|embed_positions|wte|wpe|word_embeddings|position_embeddings)$|norm|(^|\.)ln_/;

/**
 * target_modules semantics: a string is a regex that must match the whole path (re.fullmatch), except "all-linear"
 * (every Linear/Conv1D but the output head); a list matches a path equal to an entry or ending in `.entry`.
 */
export function matchesTarget(targets: string[] | string, modulePath: string, opts: TargetOptions = {}): boolean {
  if (typeof targets === 'string') {
    if (targets === 'all-linear') {
      const last = modulePath.slice(modulePath.lastIndexOf('.') + 1);
      if (last === (opts.outputHead ?? 'lm_head')) return false;
      return opts.isLinear ?? !NOT_LINEAR.test(modulePath);
    }
    return cached(`^(?:${pythonRegex(targets)})$`).test(modulePath);
  }
  return targets.some((t) => modulePath === t || modulePath.endsWith(`.${t}`));
}

/** The layer index PEFT reads for layers_to_transform, e.g. 3 for `model.layers.3.mlp.up_proj`. */
export function layerIndexOf(modulePath: string, layersPattern: string[] | string | null): number | undefined {
  const patterns = layersPattern === null || layersPattern.length === 0 ? ['[^.]*'] : ([] as string[]).concat(layersPattern);
  for (const p of patterns) {
    const m = cached(`^.*\\.${pythonRegex(p)}\\.(\\d+)\\.`).exec(modulePath);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Full PEFT targeting: exclude_modules, target_modules, then layers_to_transform (suffix-matched list targets only). */
export function isTargetModule(cfg: AdapterConfig, modulePath: string, opts: TargetOptions = {}): boolean {
  const ex = cfg.exclude_modules;
  if (ex !== null && (typeof ex === 'string' ? cached(`^(?:${pythonRegex(ex)})$`).test(modulePath) : matchesTarget(ex, modulePath))) {
    return false;
  }
  if (!matchesTarget(cfg.target_modules, modulePath, opts)) return false;
  const ltt = cfg.layers_to_transform;
  const usesLayers = ltt !== null && (!Array.isArray(ltt) || ltt.length > 0);
  // PEFT checks layers only for suffix matches: a module named in full in target_modules is adapted in any layer.
  if (!usesLayers || typeof cfg.target_modules === 'string' || cfg.target_modules.includes(modulePath)) return true;
  const idx = layerIndexOf(modulePath, cfg.layers_pattern);
  if (idx === undefined) return false;
  return Array.isArray(ltt) ? ltt.includes(idx) : idx === ltt;
}

// ---- PEFT tensor keys ----

export const PEFT_PREFIX = 'base_model.model.';
export type AdapterPart = 'lora_A' | 'lora_B' | 'lora_magnitude_vector';

const PART_SUFFIXES: [string, AdapterPart][] = [
  ['.lora_A.weight', 'lora_A'],
  ['.lora_B.weight', 'lora_B'],
  ['.lora_magnitude_vector.weight', 'lora_magnitude_vector'], // some PEFT versions keep the DoRA layer's ".weight"
  ['.lora_magnitude_vector', 'lora_magnitude_vector'],
];

/** `base_model.model.<path>.lora_A.weight` -> { path, part }; undefined for keys that are not adapter parts. */
export function adapterKeyToModule(key: string): { path: string; part: AdapterPart } | undefined {
  if (!key.startsWith(PEFT_PREFIX)) return undefined;
  for (const [suffix, part] of PART_SUFFIXES) {
    if (key.endsWith(suffix) && key.length > PEFT_PREFIX.length + suffix.length) {
      return { path: key.slice(PEFT_PREFIX.length, key.length - suffix.length), part };
    }
  }
  return undefined;
}

/** The key PEFT writes for one part of one module. */
export function moduleToAdapterKey(modulePath: string, part: AdapterPart): string {
  return part === 'lora_magnitude_vector' ? `${PEFT_PREFIX}${modulePath}.${part}` : `${PEFT_PREFIX}${modulePath}.${part}.weight`;
}

/** `model.layers.0.self_attn.q_proj` -> `model.layers.0.self_attn.q_proj.weight`. */
export function moduleToBaseWeightName(modulePath: string): string {
  if (modulePath === '') throw new AdapterError('UnknownKey', 'empty module path');
  return `${modulePath}.weight`;
}

/**
 * The base checkpoint's name for a module's weight, tolerating the usual prefix differences between the module tree
 * PEFT walks and the names a checkpoint stores (e.g. GPT-2 hub files store `h.0.attn.c_attn.weight` while the module
 * is `transformer.h.0.attn.c_attn`). Returns undefined when no candidate exists.
 */
export function resolveBaseWeightName(modulePath: string, has: (name: string) => boolean): string | undefined {
  const direct = moduleToBaseWeightName(modulePath);
  if (has(direct)) return direct;
  const dot = modulePath.indexOf('.');
  if (dot > 0 && has(`${modulePath.slice(dot + 1)}.weight`)) return `${modulePath.slice(dot + 1)}.weight`;
  for (const prefix of ['model.', 'transformer.']) if (has(`${prefix}${direct}`)) return `${prefix}${direct}`;
  return undefined;
}
