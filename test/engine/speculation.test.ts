// Speculative decoding in the scheduler: with drafts accepted and rejected, alone and batched, greedy,
// sampled, constrained, with logprobs and prefix-cache hits, every request's events are the same as
// without drafting, in fewer steps. Acceptance is steered by an oracle that drafts the tokens of the
// run without drafting (on the tiny model's random weights the MTP block guesses at chance).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SamplingParams, SubmitOptions } from '../../src/engine/api.js';
import { createEngine } from '../../src/engine/index.js';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import { argmax, DraftPolicy } from '../../src/engine/speculation.js';
import type { ModelRunner, Speculator } from '../../src/model/api.js';
import { loadModel } from '../../src/model/index.js';
import { loadTokenizer } from '../../src/tokenizer/load.js';
import { collect, engineVocab, greedy, inThread, tinyModel, tokensOf } from './fixture.js';

const tiny = await tinyModel();
const model = await loadModel(tiny.dir);
const vocab = engineVocab(await loadTokenizer());
const opts = { maxBatch: 8, prefillChunk: 32, stateBudgetBytes: 1 << 30, snapshotInterval: 32, maxSeqLen: 4096 };

const prompt = (n: number, seed: number) => Int32Array.from([0, ...tokensOf(n - 1, seed, tiny.vocab)]);
const requests: Array<{ id: string; prompt: Int32Array; sampling: SamplingParams; options?: SubmitOptions }> = [
  { id: 'greedy', prompt: prompt(6, 1), sampling: { ...greedy, maxTokens: 21 } },
  { id: 'long', prompt: prompt(70, 2), sampling: { ...greedy, maxTokens: 30 } }, // past the window (64) and a ratio-4/128 boundary
  { id: 'sampled', prompt: prompt(9, 3), sampling: { ...greedy, temperature: 1.2, topP: 0.9, seed: 5, maxTokens: 18, logprobs: true, topLogprobs: 2 } },
  { id: 'json', prompt: prompt(12, 4), sampling: { ...greedy, temperature: 0.8, seed: 9, maxTokens: 16 }, options: { constraint: { kind: 'json_object' } } },
];

type Run = ReturnType<typeof inThread>;
function runAll(runner: ModelRunner, speculative: boolean, cache: PrefixCache | null = null, sequential = false, minDraftAcceptance = 0): Run {
  const t = inThread(runner, vocab, cache, { ...opts, speculative, minDraftAcceptance });
  for (const r of requests) {
    t.s.submit(r.id, r.prompt, r.sampling, r.options);
    if (sequential) t.run();
  }
  t.run();
  return t;
}

/** Every request's events but `queued`/`started` timing details, which do not depend on drafting. */
const outputs = (t: Run) => requests.map((r) => t.events.get(r.id)!.filter((e) => e.type === 'token' || e.type === 'done'));

const reference = runAll(model, false);
const full = new Map(requests.map((r) => [r.id, [...r.prompt, ...reference.tokens(r.id)]]));

/** The model, drafting the reference run's next tokens, except every `wrongEvery`-th draft. */
function oracle(wrongEvery: number): ModelRunner & { drafts: number } {
  const spec = model.speculator!;
  const next = new Map<string, number>();
  for (const toks of full.values()) for (let p = 0; p + 1 < toks.length; p++) next.set(`${p}:${toks[p]}`, toks[p + 1]!);
  const o = {
    drafts: 0,
    vocabSize: model.vocabSize,
    maxSeqLen: model.maxSeqLen,
    args: model.args,
    newState: () => model.newState(),
    restoreState: (b: Uint8Array) => model.restoreState(b),
    forward: (s: Parameters<ModelRunner['forward']>[0]) => model.forward(s),
    speculator: {
      canDraft: (s) => spec.canDraft(s),
      acceptDrafts: (s) => spec.acceptDrafts(s),
      rejectDrafts: (s) => spec.rejectDrafts(s),
      draft: (items) => spec.draft(items).map((l, i) => {
        const { state, next: tok } = items[i]!;
        const want = next.get(`${state.position}:${tok}`) ?? 0;
        const out = new Float32Array(l.length);
        out[++o.drafts % wrongEvery === 0 ? (want + 1) % l.length : want] = 1;
        return out;
      }),
    } satisfies Speculator,
  };
  return o;
}

test('accepted and rejected drafts give the same events as no drafting, in fewer steps', () => {
  const o = oracle(4);
  const t = runAll(o, true);
  assert.deepEqual(outputs(t), outputs(reference));
  const st = t.s.stats();
  assert.ok(st['acceptedDrafts']! > 20 && st['draftedTokens']! > st['acceptedDrafts']!, JSON.stringify(st));
  assert.equal(st['decodeTokens'], reference.s.stats()['decodeTokens']);
  assert.ok(st['steps']! < reference.s.stats()['steps']!, `${st['steps']} steps vs ${reference.s.stats()['steps']}`);
  assert.equal(st['draftPauses'], 0);
});

test('one request at a time, and again from the prefix cache, still the same events', () => {
  const mk = () => new PrefixCache({ memoryBytes: 1 << 28, modelId: 'tiny-spec', restore: (b) => model.restoreState(b) });
  const cache = mk();
  const o = oracle(3);
  const first = runAll(o, true, cache, true);
  assert.deepEqual(outputs(first), outputs(reference));
  const again = runAll(o, true, cache, true);
  for (const r of requests) assert.ok((again.done(r.id)!.usage.cachedTokens ?? 0) > 0, r.id);
  assert.deepEqual(outputs(again).map((e) => e.filter((x) => x.type === 'token')), outputs(reference).map((e) => e.filter((x) => x.type === 'token')));
  assert.ok(again.s.stats()['acceptedDrafts']! > 0);
});

test("the tiny model's own MTP drafts: same events; poor acceptance pauses drafting", () => {
  const t = runAll(model, true, null, false, 0.6);
  assert.deepEqual(outputs(t), outputs(reference));
  const st = t.s.stats();
  assert.ok(st['draftedTokens']! >= 32, JSON.stringify(st));
  assert.ok(st['draftPauses']! >= 1, JSON.stringify(st));
});

test('the draft policy pauses under its acceptance floor and resumes after the pause', () => {
  const p = new DraftPolicy({ minAcceptance: 0.5, window: 4, pauseSteps: 10 });
  for (const a of [true, true, false, true]) p.record(a, 1);
  assert.ok(p.active(2));
  for (const a of [true, false, false, false]) p.record(a, 3);
  assert.ok(!p.active(12) && p.active(13));
  assert.deepEqual(p.counters, { drafted: 8, accepted: 4, pauses: 1 });
  assert.throws(() => new DraftPolicy({ minAcceptance: 2 }), /within 0..1/);
});

test('drafts are the most likely token, among the allowed ones when a constraint is active', () => {
  const l = Float32Array.of(0.5, 3, -1, 2, 3);
  assert.equal(argmax(l), 1); // ties: the lowest id
  assert.equal(argmax(l, Int32Array.of(0, 2, 3)), 3);
  assert.equal(argmax(l, Int32Array.of(4, 1)), 4); // ties among the allowed: the first listed
  assert.equal(argmax(Float32Array.of(-Infinity, -Infinity), Int32Array.of(1)), 1);
});

test('the engine option reaches the worker: drafts are made and counted, output unchanged', async () => {
  const r = requests[1]!;
  for (const speculative of [true, false]) {
    const engine = await createEngine({ modelDir: tiny.dir, prefillChunk: 32, prefixCacheBytes: 0, speculative, minDraftAcceptance: 0 });
    try {
      const evs = await collect(engine.submit(r.prompt, r.sampling).events);
      assert.deepEqual(evs.flatMap((e) => (e.type === 'token' ? [e.tokenId] : [])), reference.tokens(r.id));
      const drafted = engine.stats()['draftedTokens']!;
      assert.ok(speculative ? drafted >= 20 : drafted === 0, `speculative ${speculative}: ${drafted} drafts`);
    } finally {
      await engine.close();
    }
  }
});
