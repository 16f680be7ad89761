/**
 * ΔW of one adapter module in the base weight's own layout, and the merged weight W' as PEFT's merge_and_unload
 * computes it (LoRA/MoRA: W + ΔW; DoRA: magnitude-renormalised rows of W + ΔW).
 *
 * Layouts: a base weight is [out, in] (nn.Linear), or [in, out] when fan_in_fan_out (GPT-2 Conv1D). Adapter tensors
 * are always in the nn.Linear orientation: lora_A [r, in], lora_B [out, r], MoRA M [r̂, r̂], DoRA magnitude [out].
 * Unlike the peft-mora reference (whose get_delta_weight skips the transpose for MoRA), MoRA ΔW is transposed for
 * fan_in_fan_out layers too, so merging into a Conv1D weight is correct.
 */
import { doraMerge } from './dora';
import { AdapterError } from './errors';
import { loraDeltaW, transpose2d } from './lora';
import { moraDeltaW, moraRank } from './mora';
import type { AdapterConfig } from './peftConfig';
import { moduleRank, moduleScaling } from './targets';

export interface AdapterModule {
  /** Module path inside the base model, e.g. `model.layers.0.self_attn.q_proj`. */
  path: string;
  /** LoRA: lora_A [r, in]. MoRA: M [r̂, r̂]. */
  A: Float32Array;
  aShape: number[];
  /** LoRA: lora_B [out, r]. MoRA: the same M as A (PEFT's MoRA fork stores it twice). */
  B: Float32Array;
  bShape: number[];
  /** DoRA only: per-output magnitude [out]. */
  magnitude?: Float32Array;
}

export interface DeltaOptions {
  /** Overrides cfg.fan_in_fan_out for this layer (PEFT forces it on for Conv1D and off for Linear). */
  fanInFanOut?: boolean;
}

/** in/out features from a base weight shape. */
export function baseDims(baseShape: number[], fanInFanOut: boolean): { inF: number; outF: number } {
  if (baseShape.length !== 2 || !baseShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new AdapterError('ShapeMismatch', `base weight must be a 2-D matrix, got shape [${baseShape.join(', ')}]`);
  }
  return fanInFanOut ? { inF: baseShape[0], outF: baseShape[1] } : { inF: baseShape[1], outF: baseShape[0] };
}

const shapeStr = (s: number[]): string => `[${s.join(', ')}]`;

/**
 * Checks a module's tensors against the config (rank_pattern / r, MoRA r̂) and, when given, the base weight shape.
 * Returns the rank stored in the tensors (r for LoRA, r̂ for MoRA).
 */
export function checkModule(cfg: AdapterConfig, m: AdapterModule, baseShape?: number[], opts: DeltaOptions = {}): number {
  const where = `module ${m.path}`;
  if (m.aShape.length !== 2 || m.bShape.length !== 2) {
    throw new AdapterError('ShapeMismatch', `${where}: lora_A ${shapeStr(m.aShape)} and lora_B ${shapeStr(m.bShape)} must be 2-D`);
  }
  if (m.A.length !== m.aShape[0] * m.aShape[1] || m.B.length !== m.bShape[0] * m.bShape[1]) {
    throw new AdapterError('ShapeMismatch', `${where}: tensor data does not match its shape`);
  }
  const dims = baseShape ? baseDims(baseShape, opts.fanInFanOut ?? cfg.fan_in_fan_out) : undefined;
  const r = moduleRank(cfg, m.path);
  if (cfg.use_mora) {
    const rHat = m.aShape[0];
    if (m.aShape[1] !== rHat) throw new AdapterError('RankMismatch', `${where}: MoRA M must be square, got ${shapeStr(m.aShape)}`);
    if (m.bShape[0] !== rHat || m.bShape[1] !== rHat) {
      throw new AdapterError('MoraMatrixMismatch', `${where}: MoRA lora_B ${shapeStr(m.bShape)} differs from lora_A ${shapeStr(m.aShape)}`);
    }
    if (dims) {
      const want = moraRank(dims.inF, dims.outF, r, cfg.mora_type);
      if (want !== rHat) {
        throw new AdapterError(
          'RankMismatch',
          `${where}: MoRA M is ${rHat}×${rHat} but r=${r}, in=${dims.inF}, out=${dims.outF}, type ${cfg.mora_type} give r̂=${want}`,
        );
      }
    }
    return rHat;
  }
  const [rA, inA] = m.aShape;
  const [outB, rB] = m.bShape;
  if (rA !== rB) throw new AdapterError('RankMismatch', `${where}: lora_A ${shapeStr(m.aShape)} and lora_B ${shapeStr(m.bShape)} disagree on r`);
  if (rA !== r) throw new AdapterError('RankMismatch', `${where}: tensors have r=${rA} but the config (r / rank_pattern) says ${r}`);
  if (dims && (inA !== dims.inF || outB !== dims.outF)) {
    throw new AdapterError(
      'ShapeMismatch',
      `${where}: adapter maps ${inA} -> ${outB} but the base weight ${shapeStr(baseShape!)} is ${dims.inF} -> ${dims.outF}`,
    );
  }
  if (cfg.use_dora) {
    if (!m.magnitude) throw new AdapterError('TensorMissing', `${where}: use_dora is set but lora_magnitude_vector is missing`);
    if (m.magnitude.length !== outB) {
      throw new AdapterError('ShapeMismatch', `${where}: DoRA magnitude has ${m.magnitude.length} values, expected ${outB}`);
    }
  }
  return rA;
}

/**
 * ΔW in the base weight's layout: [out, in], or [in, out] when fan_in_fan_out. For DoRA this is the directional
 * update scaling·B·A only; the magnitude rescaling needs W and happens in mergeWeight.
 */
export function deltaWeight(cfg: AdapterConfig, m: AdapterModule, baseShape: number[], opts: DeltaOptions = {}): Float32Array {
  const fanInFanOut = opts.fanInFanOut ?? cfg.fan_in_fan_out;
  const { inF, outF } = baseDims(baseShape, fanInFanOut);
  const rank = checkModule(cfg, m, baseShape, opts);
  // [out, in] in the nn.Linear orientation
  const dW = cfg.use_mora
    ? moraDeltaW(m.A, rank, inF, outF, cfg.mora_type)
    : loraDeltaW(m.A, m.B, rank, inF, outF, moduleScaling(cfg, m.path));
  return fanInFanOut ? transpose2d(dW, outF, inF) : dW;
}

/** W' = W + ΔW (DoRA: magnitude / ‖W + ΔW‖ per output times W + ΔW), in the base layout. W is not modified. */
export function mergeWeight(
  cfg: AdapterConfig,
  m: AdapterModule,
  W: Float32Array,
  baseShape: number[],
  opts: DeltaOptions = {},
): Float32Array {
  const fanInFanOut = opts.fanInFanOut ?? cfg.fan_in_fan_out;
  const { inF, outF } = baseDims(baseShape, fanInFanOut);
  if (W.length !== inF * outF) throw new AdapterError('ShapeMismatch', `base weight has ${W.length} values, expected ${shapeStr(baseShape)}`);
  const dW = deltaWeight(cfg, m, baseShape, opts);
  let merged: Float32Array;
  if (cfg.use_dora) {
    merged = doraMerge(W, dW, m.magnitude!, outF, inF, fanInFanOut);
  } else {
    merged = dW; // reuse the fresh ΔW buffer: W + ΔW in place
    for (let i = 0; i < merged.length; i++) merged[i] += W[i];
  }
  for (let i = 0; i < merged.length; i++) {
    if (!Number.isFinite(merged[i])) {
      throw new AdapterError('NonFinite', `module ${m.path}: merged weight has a non-finite value at index ${i}`);
    }
  }
  return merged;
}
