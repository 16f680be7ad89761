// The workspace training config `mora.json`: what the Model view saves (model, targets) and what the
// "Train MoRA adapter" flow reads as its defaults. Hand-editable; schemas/mora.schema.json describes the same
// fields for the editor, and this validator is what the extension trusts.
import * as path from 'node:path';
import { backendChoices, type BackendChoice, type TrainConfig } from '../protocol/trainer';

/** Everything in mora.json is optional; missing values fall back to trainDefaults and the settings. */
export type MoraJson = { $schema?: string } & Partial<Omit<TrainConfig, 'resume'>>;

export class TrainingConfigError extends Error {
  override name = 'TrainingConfigError';
  constructor(
    readonly kind: 'syntax' | 'invalid' | 'missing',
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
  }
}

type FieldSpec =
  | { type: 'string' }
  | { type: 'boolean' }
  | { type: 'number' | 'integer'; min: number; max?: number; exclusiveMin?: boolean }
  | { type: 'enum'; values: readonly (string | number)[] }
  | { type: 'targets' };

/** One entry per mora.json key; the unit tests check that the JSON schema lists exactly these. */
export const moraJsonFields: Readonly<Record<keyof MoraJson, FieldSpec>> = {
  $schema: { type: 'string' },
  model: { type: 'string' },
  data: { type: 'string' },
  method: { type: 'enum', values: ['mora', 'lora'] },
  moraType: { type: 'enum', values: [1, 6] },
  r: { type: 'integer', min: 1, max: 4096 },
  alpha: { type: 'number', min: 0, exclusiveMin: true },
  targets: { type: 'targets' },
  steps: { type: 'integer', min: 1 },
  lr: { type: 'number', min: 0, exclusiveMin: true },
  warmupSteps: { type: 'integer', min: 0 },
  schedule: { type: 'enum', values: ['cosine', 'linear', 'constant'] },
  weightDecay: { type: 'number', min: 0 },
  clip: { type: 'number', min: 0 },
  batch: { type: 'integer', min: 1 },
  gradAccum: { type: 'integer', min: 1 },
  seq: { type: 'integer', min: 2 },
  seed: { type: 'integer', min: 0 },
  out: { type: 'string' },
  checkpointEvery: { type: 'integer', min: 0 },
  backend: { type: 'enum', values: backendChoices },
  skipBadLines: { type: 'boolean' },
};

/** The flat defaults of a run; the paper's small-scale settings scaled down to a laptop. */
export const trainDefaults: Omit<TrainConfig, 'model' | 'data' | 'out' | 'resume'> = {
  method: 'mora',
  moraType: 6, // RoPE-rotation operators (Eq. 9): the paper's choice for most experiments
  r: 8,
  alpha: 16, // LoRA only: scaling alpha / r
  targets: ['q_proj', 'v_proj'],
  steps: 200,
  lr: 2e-4,
  warmupSteps: 10,
  schedule: 'cosine',
  weightDecay: 0,
  clip: 1.0,
  batch: 4,
  gradAccum: 1,
  seq: 128,
  seed: 0,
  checkpointEvery: 50,
  backend: 'auto',
  skipBadLines: false,
};

function checkField(key: string, spec: FieldSpec, v: unknown): string | undefined {
  switch (spec.type) {
    case 'string':
      return typeof v === 'string' && v !== '' ? undefined : `${key}: expected a non-empty string`;
    case 'boolean':
      return typeof v === 'boolean' ? undefined : `${key}: expected true or false`;
    case 'enum':
      return spec.values.includes(v as string | number)
        ? undefined
        : `${key}: expected one of ${spec.values.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(v)}`;
    case 'targets':
      if (typeof v === 'string' && v !== '') return undefined;
      if (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'string' && t !== '')) return undefined;
      return `${key}: expected a non-empty list of module names, "all-linear" or a regex string`;
    case 'number':
    case 'integer': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return `${key}: expected a number, got ${JSON.stringify(v)}`;
      if (spec.type === 'integer' && !Number.isInteger(v)) return `${key}: expected an integer, got ${v}`;
      if (spec.exclusiveMin ? v <= spec.min : v < spec.min) return `${key}: must be ${spec.exclusiveMin ? '>' : '>='} ${spec.min}, got ${v}`;
      if (spec.max !== undefined && v > spec.max) return `${key}: must be <= ${spec.max}, got ${v}`;
      return undefined;
    }
  }
}

/** Every problem in a parsed mora.json value, one line each; empty when valid. */
export function moraJsonProblems(x: unknown): string[] {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return ['mora.json must contain a JSON object'];
  const problems: string[] = [];
  for (const [key, v] of Object.entries(x)) {
    const spec = (moraJsonFields as Record<string, FieldSpec>)[key];
    if (!spec) problems.push(`${key}: unknown setting`);
    else {
      const p = checkField(key, spec, v);
      if (p) problems.push(p);
    }
  }
  if (typeof (x as MoraJson).targets === 'string' && (x as MoraJson).targets !== 'all-linear') {
    try {
      new RegExp((x as { targets: string }).targets);
    } catch {
      problems.push(`targets: not a valid regular expression`);
    }
  }
  return problems;
}

/** Validates an already-parsed value; throws TrainingConfigError('invalid') listing every problem. */
export function validateMoraJson(x: unknown): MoraJson {
  const problems = moraJsonProblems(x);
  if (problems.length) throw new TrainingConfigError('invalid', `mora.json is invalid: ${problems.join('; ')}`, problems);
  return x as MoraJson;
}

/** Parses and validates mora.json text. */
export function parseMoraJson(text: string): MoraJson {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (err) {
    throw new TrainingConfigError('syntax', `mora.json is not valid JSON: ${(err as Error).message}`);
  }
  return validateMoraJson(x);
}

/**
 * Stable key order (the order of moraJsonFields, then unknown keys as they came, so a hand-added key is kept),
 * two-space indent, trailing newline: diff-friendly.
 */
export function serializeMoraJson(cfg: MoraJson): string {
  const ordered: Record<string, unknown> = {};
  const keys = [...Object.keys(moraJsonFields), ...Object.keys(cfg).filter((k) => !(k in moraJsonFields))];
  for (const key of keys) {
    const v = (cfg as Record<string, unknown>)[key];
    if (v !== undefined) ordered[key] = v;
  }
  return JSON.stringify(ordered, null, 2) + '\n';
}

/** Values for the ${...} placeholders of the output folder pattern. */
export interface OutPatternVars {
  workspaceFolder: string;
  model: string;
  method: string;
  r: number;
  /** Local time stamp, e.g. 20250101-120000. */
  date: string;
}

export function timeStamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Expands `${workspaceFolder}/.mora/runs/${model}-${method}-r${r}-${date}`; unknown placeholders are an error. */
export function expandOutPattern(pattern: string, vars: OutPatternVars): string {
  return pattern.replace(/\$\{(\w+)\}/g, (_, name: string) => {
    if (!(name in vars)) throw new TrainingConfigError('invalid', `output folder pattern: unknown placeholder \${${name}}`);
    return String(vars[name as keyof OutPatternVars]);
  });
}

/**
 * Merges defaults ← mora.json ← explicit overrides into a complete TrainConfig. Relative `model`, `data` and `out`
 * paths are resolved against `baseDir` (the workspace folder); `uuid:N` data specs are kept as they are.
 */
export function resolveTrainConfig(
  json: MoraJson,
  overrides: Partial<TrainConfig>,
  baseDir: string,
  defaults: Partial<TrainConfig> = {},
): TrainConfig {
  const { $schema: _schema, ...fromJson } = json;
  const merged = { ...trainDefaults, ...defaults, ...fromJson, ...stripUndefined(overrides) } as Partial<TrainConfig>;
  const missing = (['model', 'data', 'out'] as const).filter((k) => typeof merged[k] !== 'string' || merged[k] === '');
  if (missing.length) {
    throw new TrainingConfigError('missing', `training config is missing ${missing.join(', ')}`, missing.map((k) => `${k}: required`));
  }
  const problems = moraJsonProblems(Object.fromEntries(Object.entries(merged).filter(([k]) => k !== 'resume')));
  if (problems.length) throw new TrainingConfigError('invalid', `training config is invalid: ${problems.join('; ')}`, problems);
  const abs = (p: string) => (path.isAbsolute(p) ? p : path.resolve(baseDir, p));
  const cfg = merged as TrainConfig;
  return {
    ...cfg,
    model: abs(cfg.model),
    data: /^uuid:\d+$/.test(cfg.data) ? cfg.data : abs(cfg.data),
    out: abs(cfg.out),
    ...(cfg.resume ? { resume: abs(cfg.resume) } : {}),
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The inverse for saving: a path inside the workspace is stored relative to it (portable mora.json). */
export function relativeToWorkspace(p: string, baseDir: string): string {
  const rel = path.relative(baseDir, p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : p;
}

export function isBackendChoice(x: unknown): x is BackendChoice {
  return backendChoices.includes(x as BackendChoice);
}
