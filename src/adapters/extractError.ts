import { KindError } from '../util/kindError';

/**
 * Every failure of an adapter extraction (ΔW of a fine-tuned model back into a PEFT adapter). Bad inputs are found
 * from the safetensors headers before any tensor is read; nothing is written unless the whole adapter is ready.
 */
export type ExtractErrorKind =
  | 'BadOption' // unknown method, MoRA type or dtype, an empty target list, layouts PEFT cannot express in one config
  | 'BadRank' // r < 1, r not an integer, r > min(out, in) of a target, or no valid MoRA r̂ for it
  | 'OutputExists' // the output folder exists and force was not given
  | 'OutputIsInput' // the output is, contains, or lies inside the base or the tuned model folder
  | 'InvalidModel' // a model folder cannot be read (missing, malformed safetensors)
  | 'ArchitectureMismatch' // config.json model_type differs between base and tuned
  | 'ShapeMismatch' // a target weight has different shapes in base and tuned
  | 'MissingTarget' // a target weight exists in one model only
  | 'NoTargets' // no 2-D weight matched the targets
  | 'NoDifference' // every target ΔW is exactly zero (the same model twice)
  | 'UnsupportedDtype' // a target tensor is not floating point
  | 'NonFinite' // a ΔW holds NaN or ±inf
  | 'Cancelled'; // the AbortSignal fired

export class ExtractError extends KindError<ExtractErrorKind> {
  override name = 'ExtractError';
}
