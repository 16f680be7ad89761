import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { KindError } from '../util/kindError';

/** Architectures the tfjs transformer implements; others get a named error rather than a wrong forward pass. */
export type Arch = 'llama' | 'mistral' | 'qwen2' | 'gpt2';

export interface RopeScaling {
  type: string; // 'linear' | 'llama3' | 'dynamic' | 'yarn' | ...
  factor: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

/** A normalised view of config.json: the same field names for every architecture. */
export interface ModelConfig {
  arch: Arch;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  normEps: number;
  tieEmbeddings: boolean;
  /** Bias on the q, k and v projections (Qwen2 always, LLaMA when attention_bias). */
  qkvBias: boolean;
  /** Bias on the attention output projection (LLaMA attention_bias only). */
  oBias: boolean;
  mlpBias: boolean;
  activation: string;
  /**
   * Sliding-window attention: a query attends to itself and the `window − 1` keys before it, in layers
   * ≥ `fromLayer` (Mistral: all layers; Qwen2 only with use_sliding_window, from max_window_layers). Null: full.
   */
  slidingWindow: { window: number; fromLayer: number } | null;
  raw: Record<string, unknown>;
}

export class ModelConfigError extends KindError<'ConfigMissing' | 'ConfigInvalid' | 'UnsupportedArchitecture'> {
  override name = 'ModelConfigError';
}

function num(raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelConfigError('ConfigInvalid', `config.json: missing numeric field '${key}'`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ModelConfigError('ConfigInvalid', `config.json: field '${key}' must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function ropeScalingOf(raw: Record<string, unknown>): RopeScaling | null {
  const rs = raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object') throw new ModelConfigError('ConfigInvalid', 'config.json: rope_scaling must be an object');
  const o = rs as Record<string, unknown>;
  const type = String(o.rope_type ?? o.type ?? 'default');
  if (type === 'default') return null;
  return {
    type,
    factor: num(o, 'factor', 1),
    lowFreqFactor: typeof o.low_freq_factor === 'number' ? o.low_freq_factor : undefined,
    highFreqFactor: typeof o.high_freq_factor === 'number' ? o.high_freq_factor : undefined,
    originalMaxPositions:
      typeof o.original_max_position_embeddings === 'number' ? o.original_max_position_embeddings : undefined,
  };
}

/** Normalises a parsed config.json object. */
/** HF semantics: Mistral uses `sliding_window` when it is a number; Qwen2 only when `use_sliding_window` is true. */
function slidingWindowOf(raw: Record<string, unknown>, modelType: Arch): ModelConfig['slidingWindow'] {
  if (modelType === 'llama' || raw.sliding_window === null || raw.sliding_window === undefined) return null;
  if (modelType === 'qwen2' && raw.use_sliding_window !== true) return null;
  const window = num(raw, 'sliding_window');
  if (!(Number.isInteger(window) && window >= 1)) {
    throw new ModelConfigError('ConfigInvalid', `config.json: sliding_window must be a positive integer, got ${window}`);
  }
  return { window, fromLayer: modelType === 'qwen2' ? num(raw, 'max_window_layers', 0) : 0 };
}

export function parseModelConfig(raw: Record<string, unknown>): ModelConfig {
  const modelType = raw.model_type;
  if (modelType === 'gpt2') {
    const hidden = num(raw, 'n_embd');
    const heads = num(raw, 'n_head');
    return {
      arch: 'gpt2',
      hidden,
      layers: num(raw, 'n_layer'),
      heads,
      kvHeads: heads,
      headDim: hidden / heads,
      intermediate: num(raw, 'n_inner', 4 * hidden),
      vocab: num(raw, 'vocab_size'),
      maxPositions: num(raw, 'n_positions', 1024),
      ropeTheta: 0,
      ropeScaling: null,
      normEps: num(raw, 'layer_norm_epsilon', 1e-5),
      tieEmbeddings: raw.tie_word_embeddings !== false,
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      activation: String(raw.activation_function ?? 'gelu_new'),
      slidingWindow: null,
      raw,
    };
  }
  if (modelType !== 'llama' && modelType !== 'mistral' && modelType !== 'qwen2') {
    throw new ModelConfigError(
      'UnsupportedArchitecture',
      `model_type '${String(modelType)}' is not supported (supported: llama, mistral, qwen2, gpt2)`,
    );
  }
  const hidden = num(raw, 'hidden_size');
  const heads = num(raw, 'num_attention_heads');
  const kvHeads = num(raw, 'num_key_value_heads', heads);
  if (heads % kvHeads !== 0) {
    throw new ModelConfigError('ConfigInvalid', `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  }
  const attentionBias = raw.attention_bias === true;
  return {
    arch: modelType,
    hidden,
    layers: num(raw, 'num_hidden_layers'),
    heads,
    kvHeads,
    headDim: num(raw, 'head_dim', hidden / heads),
    intermediate: num(raw, 'intermediate_size'),
    vocab: num(raw, 'vocab_size'),
    maxPositions: num(raw, 'max_position_embeddings', 2048),
    ropeTheta: num(raw, 'rope_theta', 10000),
    ropeScaling: ropeScalingOf(raw),
    normEps: num(raw, 'rms_norm_eps', 1e-6),
    tieEmbeddings: raw.tie_word_embeddings === true,
    qkvBias: modelType === 'qwen2' || attentionBias,
    oBias: attentionBias,
    mlpBias: raw.mlp_bias === true,
    activation: String(raw.hidden_act ?? 'silu'),
    slidingWindow: slidingWindowOf(raw, modelType),
    raw,
  };
}

/** Reads and normalises `<dir>/config.json`. */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new ModelConfigError('ConfigMissing', `no config.json in ${dir}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError('ConfigInvalid', `${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError('ConfigInvalid', `${file}: expected a JSON object`);
  }
  return parseModelConfig(raw as Record<string, unknown>);
}
