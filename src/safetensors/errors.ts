import { KindError } from '../util/kindError';

/**
 * Every way a safetensors file, an index file or a write request can be wrong. The first group mirrors the
 * reference implementation's SafeTensorError variants so messages line up with what Python users see.
 */
export type SafetensorsErrorKind =
  | 'HeaderTooSmall' // file shorter than the 8-byte length prefix
  | 'HeaderTooLarge' // N > 100,000,000
  | 'InvalidHeaderLength' // 8 + N runs past the end of the file
  | 'InvalidHeader' // header bytes are not valid UTF-8
  | 'InvalidHeaderStart' // header does not start with '{'
  | 'InvalidHeaderDeserialization' // not JSON, or not a JSON object
  | 'DuplicateKey' // the same key twice in one JSON object
  | 'InvalidMetadata' // __metadata__ is not a string -> string object
  | 'UnknownDtype' // dtype string we do not know
  | 'TensorInvalidInfo' // malformed entry, or byte length != elements x dtype size
  | 'InvalidOffset' // offsets not contiguous from 0 (holes or overlaps)
  | 'ValidationOverflow' // shape or offsets beyond exact integer arithmetic (2^53)
  | 'MetadataIncompleteBuffer' // last end + 8 + N != file size
  | 'TensorNotFound' // asked for a name the file does not hold
  | 'ReadFailed' // the file shrank under us while reading
  | 'InvalidTensorData' // writer: data length does not match shape x dtype size
  | 'InvalidTensorName' // writer: duplicate name or the reserved __metadata__
  | 'UnsupportedDtype' // conversion requested for a dtype it does not cover
  | 'NoWeights' // a folder without model.safetensors or an index
  | 'IndexInvalid' // model.safetensors.index.json is malformed
  | 'IndexMissingShard' // the index names a shard file that does not exist
  | 'IndexMissingTensor'; // the index maps a tensor to a shard that does not hold it

export class SafetensorsError extends KindError<SafetensorsErrorKind> {
  override name = 'SafetensorsError';
}
