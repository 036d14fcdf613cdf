// Public surface of the checkpoint layer.
export * from './types.js';
export { CheckpointError } from './errors.js';
export { modelArgsFromHfConfig, checkModelArgs, MODEL_ARGS_DEFAULTS } from './config.js';
export { SafetensorsFile, DTYPE_BYTES, tensorByteLength, elementCount, encodeHeader, type TensorEntry } from './safetensors.js';
export { openCheckpoint, readCheckpointConfig, LocalCheckpoint, INDEX_FILE, type OpenCheckpointOptions, type TensorLocation } from './open.js';
export { validateCheckpoint } from './validate.js';
export { tensorInventory, summarizeInventory, parseExpertName, type TensorSpec, type TensorRole, type InventorySummary } from './inventory.js';
export { PRESETS, PRESET_NAMES, presetArgs, hfConfigFromArgs, isPresetName, type PresetName, type ShapeOverrides } from './presets.js';
export { initCheckpoint, type InitOptions, type InitResult } from './init.js';
export { writeSyntheticCheckpoint, planShards } from './writer.js';
export { checkpointInfo, sequenceStateSize, budgetPlan, layerCensus, type CheckpointInfo } from './info.js';
export { ExpertCache, type ExpertCacheStats, type ExpertCacheOptions, type ExpertWeightSet } from './expert-cache.js';
export { parseSize, formatBytes } from './size.js';
