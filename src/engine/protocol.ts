// Messages between the engine handle (main thread) and its worker.
import type { EngineEvent, SamplingParams, SubmitOptions } from './api.js';

export type ToWorker =
  | { type: 'submit'; id: string; prompt: Int32Array; sampling: SamplingParams; options: SubmitOptions }
  | { type: 'cancel'; id: string }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; stats: Record<string, number> }
  | { type: 'events'; events: Array<[string, EngineEvent]>; stats: Record<string, number> }
  | { type: 'log'; message: string }
  | { type: 'fatal'; message: string };
