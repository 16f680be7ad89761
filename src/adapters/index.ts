// PEFT adapter format (LoRA, DoRA, MoRA) and the adapter math. See mora.ts for the exact MoRA semantics.
export { AdapterError, type AdapterErrorKind } from './errors';
export {
  moraApply, moraChunks, moraCompress, moraDeltaW, moraExpand, moraExpandAdjoint, moraMix, moraParamCount, moraRank,
  moraRopeTables, type MoraType,
} from './mora';
export { loraApply, loraDeltaW, loraScaling, transpose2d } from './lora';
export { doraMerge, doraWeightNorm } from './dora';
export { defaultAdapterConfig, parseAdapterConfig, pythonRegex, serializeAdapterConfig, type AdapterConfig } from './peftConfig';
export {
  PEFT_PREFIX, adapterKeyToModule, isTargetModule, layerIndexOf, matchesTarget, moduleAlpha, moduleRank, moduleScaling,
  moduleToAdapterKey, moduleToBaseWeightName, patternKey, resolveBaseWeightName, type AdapterPart, type TargetOptions,
} from './targets';
export { baseDims, checkModule, deltaWeight, mergeWeight, type AdapterModule, type DeltaOptions } from './deltaWeight';
export {
  CONFIG_FILE, WEIGHTS_FILE, readAdapter, readAdapterConfig, writeAdapter, type Adapter, type ReadOptions, type SavedTensor,
  type WriteOptions,
} from './peftAdapter';
