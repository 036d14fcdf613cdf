// Sequence-state semantics: decode one by one == prefill (across compression
// boundaries and the window wrap), batched == alone, chunks, clone / serialize / reset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type Dsv4Model, type SequenceState } from '../../src/model/index.js';
import { readNpy } from '../../src/tensor/npy.js';

const dir = (name: string) => new URL(`../../../test/fixtures/golden/${name}`, import.meta.url).pathname;

function tokensOf(name: string): Int32Array {
  const a = readNpy(`${dir(name)}/arrays/input_ids.npy`).data as Int32Array;
  const b = readNpy(`${dir(name)}/arrays/decode_ids.npy`).data as Int32Array;
  const t = new Int32Array(a.length + b.length);
  t.set(a);
  t.set(b, a.length);
  return t;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: logit ${i} differs (${a[i]} vs ${b[i]})`);
}

function prefill(m: Dsv4Model, tokens: Int32Array): { state: SequenceState; logits: Float32Array } {
  const state = m.newState();
  return { state, logits: m.forward([{ state, tokens }])[0]! };
}

test('tiny-a: decoding one by one equals prefilling, across the ratio-4 and ratio-128 boundaries', async () => {
  const m = await loadModel(`${dir('tiny-a')}/checkpoint`);
  const t = tokensOf('tiny-a');
  const { state } = prefill(m, t.subarray(0, 122)); // > window 64: the ring has wrapped
  let last: Float32Array | null = null;
  for (let p = 122; p < 129; p++) last = m.forward([{ state, tokens: t.subarray(p, p + 1) }])[0]!;
  assert.equal(state.position, 129);
  // position 127 completed HCA entry 0 of 128 and CSA entries up to 31
  sameBits(last!, prefill(m, t.subarray(0, 129)).logits, 'decode vs prefill at 129');
});

test('tiny-b: decode == prefill across ratio-32/4 boundaries; chunked decode == one by one', async () => {
  const m = await loadModel(`${dir('tiny-b')}/checkpoint`);
  const t = tokensOf('tiny-b');
  const a = prefill(m, t.subarray(0, 60)).state; // window 56: wrapped
  const b = a.clone();
  const checkpoints = new Map<number, Float32Array>();
  for (let p = 60; p < 100; p++) {
    const l = m.forward([{ state: a, tokens: t.subarray(p, p + 1) }])[0]!;
    if (p === 63 || p === 95 || p === 99) checkpoints.set(p + 1, l);
  }
  for (const [len, l] of checkpoints) sameBits(l, prefill(m, t.subarray(0, len)).logits, `decode vs prefill at ${len}`);
  // one forward call with 40 tokens at position 60 (decode semantics per row)
  const chunk = m.forward([{ state: b, tokens: t.subarray(60, 100) }])[0]!;
  sameBits(chunk, checkpoints.get(100)!, 'chunk vs one by one');
  assert.deepEqual(b.serialize(), a.serialize());
});

test('tiny-b: batched forward equals running each sequence alone; clone, serialize, reset', async () => {
  const m = await loadModel(`${dir('tiny-b')}/checkpoint`);
  const t = tokensOf('tiny-b');
  const A = t.subarray(0, 58);
  const B = t.subarray(20, 90);
  const alone = [prefill(m, A), prefill(m, B)];
  const sa = m.newState();
  const sb = m.newState();
  const batched = m.forward([{ state: sa, tokens: A }, { state: sb, tokens: B }]);
  sameBits(batched[0]!, alone[0]!.logits, 'A batched');
  sameBits(batched[1]!, alone[1]!.logits, 'B batched');
  // a decode row and a fresh prefill in one call
  const sc = m.newState();
  const mixed = m.forward([{ state: sa, tokens: t.subarray(58, 59) }, { state: sc, tokens: t.subarray(5, 30) }]);
  sameBits(mixed[0]!, m.forward([{ state: alone[0]!.state, tokens: t.subarray(58, 59) }])[0]!, 'decode row in a mixed batch');
  sameBits(mixed[1]!, prefill(m, t.subarray(5, 30)).logits, 'prefill row in a mixed batch');
  // a decode step of 4 sequences: their last rows share one head product (4 rows), each as alone
  const starts = [0, 7, 31, 64];
  const runs = starts.map((s0) => prefill(m, t.subarray(s0, s0 + 9)));
  const solo = runs.map((r, i) => m.forward([{ state: r.state.clone(), tokens: t.subarray(starts[i]! + 9, starts[i]! + 10) }])[0]!);
  const step = m.forward(runs.map((r, i) => ({ state: r.state, tokens: t.subarray(starts[i]! + 9, starts[i]! + 10) })));
  step.forEach((l, i) => sameBits(l, solo[i]!, `sequence ${i} of a 4-sequence decode step`));

  // clone and serialize/restore continue exactly like the original
  const next = t.subarray(90, 92);
  const copy = sb.clone();
  const restored = m.restoreState(sb.serialize());
  assert.equal(restored.position, 70);
  assert.ok(sb.byteSize() > 0);
  const ref = m.forward([{ state: sb, tokens: next }])[0]!;
  sameBits(m.forward([{ state: copy, tokens: next }])[0]!, ref, 'clone');
  sameBits(m.forward([{ state: restored, tokens: next }])[0]!, ref, 'restored');
  assert.deepEqual(restored.serialize(), sb.serialize());

  // reset: nothing left over
  sb.reset();
  assert.equal(sb.position, 0);
  sameBits(m.forward([{ state: sb, tokens: t.subarray(0, 3) }])[0]!, prefill(m, t.subarray(0, 3)).logits, 'after reset');
  assert.throws(() => m.forward([{ state: sb, tokens: new Int32Array([m.vocabSize]) }]), /outside the vocabulary/);
  assert.throws(() => m.restoreState(new Uint8Array(16)), /not a serialized/);
});
