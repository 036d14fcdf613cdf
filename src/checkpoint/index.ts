// Public surface of the checkpoint layer.
export * from './types.js';
export { CheckpointError } from './errors.js';
export { modelArgsFromHfConfig, checkModelArgs, MODEL_ARGS_DEFAULTS } from './config.js';
export { SafetensorsFile, DTYPE_BYTES, tensorByteLength, elementCount, encodeHeader, type TensorEntry } from './safetensors.js';
export { openCheckpoint, readCheckpointConfig, LocalCheckpoint, INDEX_FILE, type OpenCheckpointOptions, type TensorLocation } from './open.js';
export { validateCheckpoint } from './validate.js';
