// The engine's worker thread: owns the model, the tokenizer, the scheduler and the prefix cache, and
// runs scheduling steps back to back, yielding to its own event loop between steps so that submit and
// cancel messages are handled at once (the HTTP event loop never runs model math).

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { ExpertCache } from '../checkpoint/expert-cache.js';
import { loadModel } from '../model/index.js';
import { getKernels } from '../tensor/native.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { EngineEvent } from './api.js';
import { ENGINE_DEFAULTS, type EngineOptions } from './options.js';
import { PrefixCache } from './prefix-cache.js';
import { Scheduler, type EngineVocab } from './scheduler.js';
import type { FromWorker, ToWorker } from './protocol.js';

const port = parentPort!;
const opts = workerData as EngineOptions;

/** Identity of the weights and config, for prefix-cache files (never serve another model's states). */
export function modelIdentity(dir: string, maxSeqLen: number): string {
  const h = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    if (name.endsWith('.json')) h.update(name).update(readFileSync(join(dir, name)));
    else if (name.endsWith('.safetensors')) h.update(`${name}:${statSync(join(dir, name)).size}`);
  }
  return `dsv4:${h.digest('hex')}:ctx${maxSeqLen}`;
}

async function main(): Promise<void> {
  const model = await loadModel(opts.modelDir, {
    ...(opts.maxSeqLen ? { maxSeqLen: opts.maxSeqLen } : {}),
    ...(opts.memoryBudget !== undefined ? { memoryBudget: opts.memoryBudget } : {}),
    ...(opts.numerics ? { numerics: opts.numerics } : {}),
  });
  // drafts never change the output: under exact numerics the MTP block drafts with the fast kernels
  if (opts.speculative && model.hasMtp && model.kernels.numerics !== 'fast') model.draftKernels = getKernels('fast');
  const expertCache = model.experts instanceof ExpertCache ? model.experts : null;
  const tokenizer = await loadTokenizer(opts.modelDir);
  const added = new Set(tokenizer.addedTokens().map((t) => t.id));
  const vocab: EngineVocab = {
    eosId: tokenizer.eosId,
    tokenBytes: (id) => tokenizer.tokenToBytes(id),
    // every added token (BOS/EOS, role markers, <think>, DSML) is a control token for constraints
    isSpecial: (id) => added.has(id) || tokenizer.isSpecial(id),
  };
  const maxSeqLen = Math.min(opts.maxSeqLen ?? model.maxSeqLen, model.maxSeqLen);
  const cacheBytes = opts.prefixCacheBytes ?? ENGINE_DEFAULTS.prefixCacheBytes;
  const cache =
    cacheBytes > 0 || opts.cacheDir
      ? new PrefixCache({
          memoryBytes: cacheBytes,
          dir: opts.cacheDir,
          diskBytes: opts.cacheDiskBytes,
          modelId: modelIdentity(opts.modelDir, maxSeqLen) + (model.kernels.numerics === 'fast' ? ':fast' : ''),
          restore: (b) => model.restoreState(b),
        })
      : null;
  const prefillChunk = opts.prefillChunk ?? ENGINE_DEFAULTS.prefillChunk;
  let outbox: Array<[string, EngineEvent]> = [];
  const scheduler = new Scheduler(
    model,
    vocab,
    cache,
    {
      maxBatch: opts.maxBatch ?? ENGINE_DEFAULTS.maxBatch,
      prefillChunk,
      stateBudgetBytes: opts.stateBudgetBytes ?? ENGINE_DEFAULTS.stateBudgetBytes,
      snapshotInterval: opts.snapshotInterval ?? Math.max(prefillChunk, ENGINE_DEFAULTS.snapshotInterval),
      maxSeqLen,
      ...(opts.speculative !== undefined ? { speculative: opts.speculative } : {}),
      ...(opts.minDraftAcceptance !== undefined ? { minDraftAcceptance: opts.minDraftAcceptance } : {}),
    },
    (id, ev) => outbox.push([id, ev]),
  );

  const stats = (): Record<string, number> => {
    const s: Record<string, number> = { ...scheduler.stats(), maxSeqLen, vocabSize: model.vocabSize, fastNumerics: model.kernels.numerics === 'fast' ? 1 : 0 };
    if (cache) {
      s['cacheEntries'] = cache.size;
      s['cacheMemoryBytes'] = cache.memoryBytes;
      s['cacheDiskBytes'] = cache.storedDiskBytes;
      for (const [k, v] of Object.entries(cache.counters)) s[`cache${k[0]!.toUpperCase()}${k.slice(1)}`] = v;
    }
    if (expertCache) {
      // --memory-budget: expertCacheHits, expertCacheMisses, expertCacheHitRate, expertCacheBytesRead, expertCacheStallMs, ...
      for (const [k, v] of Object.entries(expertCache.stats())) s[`expertCache${k[0]!.toUpperCase()}${k.slice(1)}`] = v;
    }
    return s;
  };
  const flush = (): void => {
    const msg: FromWorker = { type: 'events', events: outbox, stats: stats() };
    outbox = [];
    port.postMessage(msg);
  };

  let running = false;
  const loop = (): void => {
    try {
      scheduler.step();
    } catch (err) {
      // A scheduler bug must not wedge the worker: report it, end the affected requests, keep serving.
      port.postMessage({ type: 'log', message: `engine step failed: ${err instanceof Error ? err.stack : String(err)}` } satisfies FromWorker);
      scheduler.failAll(err);
    }
    flush();
    if (scheduler.hasWork) setImmediate(loop);
    else running = false;
  };
  const kick = (): void => {
    if (!running && scheduler.hasWork) {
      running = true;
      setImmediate(loop);
    }
  };

  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'submit') scheduler.submit(msg.id, msg.prompt, msg.sampling, msg.options);
    else if (msg.type === 'cancel') scheduler.cancel(msg.id);
    else if (msg.type === 'close') {
      port.close();
      return;
    }
    flush();
    kick();
  });
  port.postMessage({ type: 'ready', stats: stats() } satisfies FromWorker);
}

main().catch((err: unknown) => {
  port.postMessage({ type: 'fatal', message: err instanceof Error ? err.message : String(err) } satisfies FromWorker);
});
