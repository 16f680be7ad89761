import { KindError } from '../util/kindError';

/**
 * Every failure of the adapter layer: a bad adapter folder, a config PEFT would reject, tensors that do not fit the
 * config or the base model. `kind` is stable and meant for programs (CLI messages, tests); `message` is for people.
 */
export type AdapterErrorKind =
  | 'ConfigMissing' // adapter_config.json is absent
  | 'ConfigInvalid' // adapter_config.json is not JSON, or a field has the wrong type or an unsupported value
  | 'WeightsMissing' // adapter_model.safetensors is absent (adapter_model.bin pickles are not read)
  | 'TensorMissing' // a module lacks lora_A / lora_B, or DoRA lacks its magnitude vector
  | 'UnknownKey' // a tensor key that is neither a LoRA/MoRA/DoRA part nor a modules_to_save weight
  | 'DuplicateKey' // two keys name the same part of one module (lora_magnitude_vector with and without .weight)
  | 'BadDtype' // adapter tensors must be floating point
  | 'RankMismatch' // config r / rank_pattern, MoRA r̂ or the base shape disagree with tensor shapes
  | 'ShapeMismatch' // tensor shapes are inconsistent with each other or with the base weight
  | 'MoraMatrixMismatch' // MoRA lora_A.weight and lora_B.weight are both present and differ
  | 'NonFinite'; // a merge produced NaN or ±inf (e.g. a DoRA row whose norm is zero)

export class AdapterError extends KindError<AdapterErrorKind> {
  override name = 'AdapterError';
}
