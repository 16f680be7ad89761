/**
 * adapter_config.json as PEFT's LoraConfig (and the peft-mora fork's `use_mora` / `mora_type`) reads and writes it.
 * Missing fields take PEFT's dataclass defaults; fields of the wrong type are a ConfigInvalid error; fields this
 * project does not interpret are kept in `extra` and written back unchanged, so a round trip loses nothing.
 */
import { AdapterError } from './errors';
import type { MoraType } from './mora';

export interface AdapterConfig {
  peft_type: 'LORA';
  base_model_name_or_path: string | null;
  task_type: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** A list (exact module name or `.name` suffix), a regex string (full match), or "all-linear". */
  target_modules: string[] | string;
  exclude_modules: string[] | string | null;
  /** True when base weights are stored [in, out] (GPT-2 Conv1D). */
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  use_rslora: boolean;
  use_dora: boolean;
  /** Per-module overrides; keys are regexes matched against the module path as `(.*\.)?key$`. */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  modules_to_save: string[] | null;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  init_lora_weights: boolean | string;
  inference_mode: boolean;
  use_mora: boolean;
  mora_type: MoraType;
  /** Keys not interpreted here (revision, loftq_config, megatron_config, …), written back verbatim. */
  extra: Record<string, unknown>;
}

// PEFT LoraConfig defaults (peft-mora adds use_mora=false, mora_type=1).
const DEFAULTS: Omit<AdapterConfig, 'extra'> = {
  peft_type: 'LORA',
  base_model_name_or_path: null,
  task_type: 'CAUSAL_LM',
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  target_modules: ['q_proj', 'v_proj'],
  exclude_modules: null,
  fan_in_fan_out: false,
  bias: 'none',
  use_rslora: false,
  use_dora: false,
  rank_pattern: {},
  alpha_pattern: {},
  modules_to_save: null,
  layers_to_transform: null,
  layers_pattern: null,
  init_lora_weights: true,
  inference_mode: true,
  use_mora: false,
  mora_type: 1,
};
const KNOWN = new Set(Object.keys(DEFAULTS));

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const bad = (field: string, want: string, got: unknown): AdapterError =>
  new AdapterError('ConfigInvalid', `adapter_config.json: ${field} must be ${want}, got ${JSON.stringify(got)}`);

/** Translates the few Python-only regex constructs PEFT users write into JavaScript syntax. */
export function pythonRegex(src: string): string {
  return src.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>').replace(/\\Z/g, '$');
}

function compileOrThrow(field: string, src: string): void {
  try {
    new RegExp(pythonRegex(src));
  } catch (err) {
    throw new AdapterError('ConfigInvalid', `adapter_config.json: ${field} has an invalid regex '${src}': ${(err as Error).message}`);
  }
}

function numberMap(field: string, v: unknown, positiveInt: boolean): Record<string, number> {
  if (v === null || v === undefined) return {};
  if (!isObj(v)) throw bad(field, 'an object of numbers', v);
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(v)) {
    const ok = typeof n === 'number' && Number.isFinite(n) && (!positiveInt || (Number.isInteger(n) && n > 0));
    if (!ok) throw bad(`${field}["${k}"]`, positiveInt ? 'a positive integer' : 'a finite number', n);
    compileOrThrow(`${field} key`, k);
    out[k] = n;
  }
  return out;
}

/** Validates parsed JSON (or a partial object) into an AdapterConfig; throws AdapterError('ConfigInvalid'). */
export function parseAdapterConfig(json: unknown): AdapterConfig {
  if (!isObj(json)) throw bad('the top level', 'a JSON object', json);
  const j = json;
  const pick = <K extends keyof typeof DEFAULTS>(k: K): unknown => (j[k] === undefined ? DEFAULTS[k] : j[k]);
  const bool = (k: keyof typeof DEFAULTS): boolean => {
    const v = pick(k);
    if (typeof v !== 'boolean') throw bad(k, 'true or false', v);
    return v;
  };
  const strOrNull = (k: keyof typeof DEFAULTS): string | null => {
    const v = pick(k);
    if (v !== null && typeof v !== 'string') throw bad(k, 'a string or null', v);
    return v;
  };
  const listOrRegex = (k: 'target_modules' | 'exclude_modules' | 'layers_pattern', nullable: boolean): string[] | string | null => {
    const v = pick(k);
    if (v === null && nullable) return null;
    if (typeof v === 'string') {
      if (k !== 'layers_pattern' && v !== 'all-linear') compileOrThrow(k, v);
      return v;
    }
    if (isStrList(v)) return [...v];
    throw bad(k, nullable ? 'a list of names, a regex string or null' : 'a list of names or a regex string', v);
  };

  const peftType = pick('peft_type');
  if (peftType !== 'LORA') throw bad('peft_type', '"LORA" (LoRA, DoRA and MoRA adapters)', peftType);
  const r = pick('r');
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) throw bad('r', 'a positive integer', r);
  const alpha = pick('lora_alpha');
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw bad('lora_alpha', 'a number', alpha);
  const dropout = pick('lora_dropout');
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw bad('lora_dropout', 'a number in [0, 1)', dropout);
  const bias = pick('bias');
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') throw bad('bias', '"none", "all" or "lora_only"', bias);
  const mts = pick('modules_to_save');
  if (mts !== null && !isStrList(mts)) throw bad('modules_to_save', 'a list of names or null', mts);
  const ltt = pick('layers_to_transform');
  const intOk = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0;
  if (ltt !== null && !intOk(ltt) && !(Array.isArray(ltt) && ltt.every(intOk))) {
    throw bad('layers_to_transform', 'a layer index, a list of them, or null', ltt);
  }
  const init = pick('init_lora_weights');
  if (typeof init !== 'boolean' && typeof init !== 'string') throw bad('init_lora_weights', 'a boolean or a string', init);
  const moraType = pick('mora_type');
  if (moraType !== 1 && moraType !== 6) throw bad('mora_type', '1 or 6 (the types this project implements)', moraType);

  const cfg: AdapterConfig = {
    peft_type: 'LORA',
    base_model_name_or_path: strOrNull('base_model_name_or_path'),
    task_type: strOrNull('task_type'),
    r,
    lora_alpha: alpha,
    lora_dropout: dropout,
    target_modules: listOrRegex('target_modules', false) as string[] | string,
    exclude_modules: listOrRegex('exclude_modules', true),
    fan_in_fan_out: bool('fan_in_fan_out'),
    bias,
    use_rslora: bool('use_rslora'),
    use_dora: bool('use_dora'),
    rank_pattern: numberMap('rank_pattern', j.rank_pattern, true),
    alpha_pattern: numberMap('alpha_pattern', j.alpha_pattern, false),
    modules_to_save: mts === null ? null : [...(mts as string[])],
    layers_to_transform: Array.isArray(ltt) ? [...(ltt as number[])] : (ltt as number | null),
    layers_pattern: listOrRegex('layers_pattern', true),
    init_lora_weights: init,
    inference_mode: bool('inference_mode'),
    use_mora: bool('use_mora'),
    mora_type: moraType,
    extra: {},
  };
  for (const [k, v] of Object.entries(j)) if (!KNOWN.has(k)) cfg.extra[k] = v;

  if (cfg.use_mora && cfg.use_dora) throw new AdapterError('ConfigInvalid', 'adapter_config.json: use_mora and use_dora cannot both be true');
  if (typeof cfg.target_modules === 'string' && (cfg.layers_to_transform !== null || cfg.layers_pattern !== null)) {
    // Same rule as PEFT's LoraConfig.__post_init__.
    throw new AdapterError('ConfigInvalid', 'adapter_config.json: layers_to_transform / layers_pattern need target_modules to be a list');
  }
  return cfg;
}

/** A complete config from a few fields, everything else at PEFT's defaults (validated like a parsed file). */
export function defaultAdapterConfig(partial: Partial<AdapterConfig> = {}): AdapterConfig {
  const { extra, ...rest } = partial;
  const cfg = parseAdapterConfig({ ...DEFAULTS, ...rest });
  cfg.extra = { ...(extra ?? {}) };
  return cfg;
}

/**
 * The JSON text PEFT would write: every field at top level, keys sorted, two-space indent. Fields older PEFT versions
 * do not know (exclude_modules, and the MoRA fork's use_mora / mora_type) are left out while at their defaults, since
 * those versions reject unknown keys when loading a config (peft-mora itself predates exclude_modules).
 */
export function serializeAdapterConfig(cfg: AdapterConfig): string {
  const { extra, ...known } = cfg;
  const flat: Record<string, unknown> = { ...extra, ...known };
  if (cfg.exclude_modules === null) delete flat.exclude_modules;
  if (!cfg.use_mora) {
    delete flat.use_mora;
    delete flat.mora_type;
  }
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(flat).sort()) sorted[k] = flat[k];
  return JSON.stringify(sorted, null, 2) + '\n';
}
