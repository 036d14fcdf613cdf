// The engine handle on the caller's thread: starts the worker (./worker.ts), forwards submit/cancel,
// and turns the worker's event batches into one async stream per request.

import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Engine, EngineEvent, GenerationHandle, SamplingParams, SubmitOptions } from './api.js';
import type { EngineOptions } from './options.js';
import type { FromWorker, ToWorker } from './protocol.js';

export type { Engine, EngineEvent, GenerationHandle, SamplingParams, SubmitOptions } from './api.js';
export { ENGINE_DEFAULTS, type EngineOptions } from './options.js';

/** A single-consumer async queue of events that ends after `done`. */
class EventStream implements AsyncIterable<EngineEvent> {
  private readonly buffered: EngineEvent[] = [];
  private waiting: ((r: IteratorResult<EngineEvent>) => void) | null = null;
  private ended = false;

  push(ev: EngineEvent): void {
    if (this.ended) return;
    if (ev.type === 'done') this.ended = true;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w({ value: ev, done: false });
    } else this.buffered.push(ev);
  }

  get finished(): boolean {
    return this.ended;
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineEvent> {
    let sawDone = false;
    return {
      next: (): Promise<IteratorResult<EngineEvent>> => {
        if (sawDone) return Promise.resolve({ value: undefined, done: true });
        const ev = this.buffered.shift();
        if (ev) {
          if (ev.type === 'done') sawDone = true;
          return Promise.resolve({ value: ev, done: false });
        }
        return new Promise((resolve) => {
          this.waiting = (r) => {
            if (!r.done && r.value.type === 'done') sawDone = true;
            resolve(r);
          };
        });
      },
    };
  }
}

const emptyUsage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };

/** Starts an engine: loads the model in a worker thread; resolves once it is ready to serve. */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: options });
  const streams = new Map<string, EventStream>();
  let lastStats: Record<string, number> = {};
  let dead: string | null = null;

  const failAll = (message: string): void => {
    dead ??= message;
    for (const [id, s] of streams) {
      s.push({ type: 'done', finishReason: 'error', error: message, usage: emptyUsage });
      streams.delete(id);
    }
  };

  await new Promise<void>((resolve, reject) => {
    const onEarlyExit = (code: number): void => reject(new Error(`engine worker exited (code ${code}) while loading the model`));
    worker.once('error', reject);
    worker.once('exit', onEarlyExit);
    worker.on('message', (msg: FromWorker) => {
      switch (msg.type) {
        case 'ready':
          lastStats = msg.stats;
          worker.off('error', reject);
          worker.off('exit', onEarlyExit);
          worker.on('error', (err) => failAll(`engine worker failed: ${err.message}`));
          worker.on('exit', (code) => failAll(`engine worker exited (code ${code})`));
          resolve();
          break;
        case 'fatal':
          reject(new Error(msg.message));
          void worker.terminate();
          break;
        case 'log':
          process.emitWarning(msg.message, 'EngineWarning');
          break;
        case 'events':
          lastStats = msg.stats;
          for (const [id, ev] of msg.events) {
            const s = streams.get(id);
            if (!s) continue;
            s.push(ev);
            if (ev.type === 'done') streams.delete(id);
          }
          break;
      }
    });
  });

  const send = (msg: ToWorker): void => worker.postMessage(msg);
  const maxSeqLen = lastStats['maxSeqLen']!; // the worker's ready stats carry the context it really has

  return {
    submit(promptTokens: Int32Array, sampling: SamplingParams, opts: SubmitOptions = {}): GenerationHandle {
      const id = opts.requestId ?? randomUUID();
      const stream = new EventStream();
      const handle: GenerationHandle = {
        id,
        events: stream,
        cancel: () => {
          if (!stream.finished && streams.get(id) === stream) send({ type: 'cancel', id });
        },
      };
      if (dead || streams.has(id)) {
        const error = dead ?? `duplicate request id ${id}`;
        stream.push({ type: 'done', finishReason: 'error', error, usage: { ...emptyUsage, promptTokens: promptTokens.length } });
        return handle;
      }
      streams.set(id, stream);
      send({ type: 'submit', id, prompt: Int32Array.from(promptTokens), sampling: { ...sampling, stop: [...(sampling.stop ?? [])] }, options: { ...opts } });
      return handle;
    },
    stats(): Record<string, number> {
      return { ...lastStats, open: streams.size };
    },
    maxSeqLen,
    async close(): Promise<void> {
      for (const id of streams.keys()) send({ type: 'cancel', id });
      failAll('engine closed');
      await worker.terminate();
    },
  };
}
