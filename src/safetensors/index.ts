// Strict safetensors reader and writer (format: 8-byte LE header length N, N bytes of JSON, then the data buffer).
export { SafetensorsError, type SafetensorsErrorKind } from './errors';
export { DTYPES, dtypeRank, dtypeSize, isDtype, numel, type Dtype } from './dtype';
export {
  bf16BitsToF32, bytesToFloat32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, f8e4m3ToF32, f8e5m2ToF32, float32ToBytes,
  LITTLE_ENDIAN,
} from './convert';
export {
  MAX_HEADER_SIZE, parseHeaderBytes, parseHeaderJson, parseHeaderLength, type SafetensorsHeader, type TensorInfo,
} from './header';
export { SafetensorsFile, readFully, readHeader } from './file';
export { INDEX_FILE, ModelWeights, SINGLE_FILE, parseIndex, type SafetensorsIndex } from './sharded';
export {
  encodeHeader, safetensorsOrder, serializeSafetensors, writeSafetensors, type TensorBytes, type TensorToWrite,
} from './writer';
