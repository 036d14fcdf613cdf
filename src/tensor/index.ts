// Public surface of the tensor layer: number formats, exact arithmetic, quantizers, kernels.
export * from './formats.js';
export * from './exact.js';
export * from './quant.js';
export * from './hadamard.js';
export * from './norm.js';
export * from './rope.js';
export type * from './kernels.js';
export { referenceKernels } from './reference-kernels.js';
export * from './npy.js';
