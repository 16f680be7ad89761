import { KindError } from '../util/kindError';

/**
 * Every failure of a merge. A merge either produces the whole output folder or nothing: these errors are raised
 * before anything is written (bad inputs) or abort the temp folder, which is then removed (bad results, cancel).
 */
export type MergeErrorKind =
  | 'BadOption' // an option out of range: density, weight, dtype, method, empty adapter list
  | 'OutputExists' // the output folder exists and force was not given
  | 'OutputIsInput' // the output would replace the base model or an adapter
  | 'InvalidBase' // the base model folder or file cannot be read (missing, malformed safetensors)
  | 'InvalidAdapter' // the adapter folder cannot be read (missing files, truncated or malformed safetensors)
  | 'ArchitectureMismatch' // the adapter was made for another model: none of its modules exist, or config.json differs
  | 'MissingTargetTensor' // some adapter modules have no `<module>.weight` in the base
  | 'ShapeMismatch' // adapter tensors do not fit the base weight's [out, in]
  | 'RankMismatch' // the config's r (or MoRA r̂) disagrees with the tensor shapes
  | 'UnsupportedDtype' // the target base tensor is not floating point
  | 'UnsupportedCombination' // e.g. DoRA inside a multi-adapter merge, or a DoRA adapter with weight ≠ 1
  | 'NonFiniteResult' // a ΔW or merged tensor holds NaN/Inf, or overflows the output dtype
  | 'Cancelled'; // the AbortSignal fired

export class MergeError extends KindError<MergeErrorKind> {
  override name = 'MergeError';
}

/** Shortens long name lists in messages: "a, b, c and 12 more". */
export function listSome(names: string[], max = 3): string {
  if (names.length <= max) return names.join(', ');
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}
