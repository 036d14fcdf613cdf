// Speculative decoding at the model level: draft rows verified in one forward call give the golden
// logits, rejecting them leaves the state bit-identical to never having consumed them (across the
// window wrap and compression-block ends, overlapping and not), and the MTP block kept in step
// through prefill, verify steps and rejections drafts with the golden MTP logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type Dsv4Model } from '../../src/model/index.js';
import type { ModelState } from '../../src/model/state.js';
import { readNpy } from '../../src/tensor/npy.js';
import { getKernels } from '../../src/tensor/native.js';

const dir = (name: string) => new URL(`../../../test/fixtures/golden/${name}`, import.meta.url).pathname;
const arr = (name: string, a: string) => readNpy(`${dir(name)}/arrays/${a}.npy`).data;

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: logit ${i} differs (${a[i]} vs ${b[i]})`);
}

/** The main model's state as bytes (window rings, compressor rows, caches) and its position. */
function mainState(s: ModelState): string {
  const parts = s.layers.flatMap((l) => l.arrays().map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')));
  return `${s.position}:${parts.join('|')}`;
}

const row = (l: Float32Array, r: number, V: number) => l.subarray(r * V, (r + 1) * V);

for (const [name, fastDrafts] of [['tiny-a', false], ['tiny-b', false], ['tiny-a', true]] as const) {
  const what = fastDrafts ? 'with the MTP block in fast kernels, verify steps still match' : 'verify steps, rejections and MTP drafts match';
  test(`${name}: ${what} the golden logits`, async () => {
    const m = await loadModel(`${dir(name)}/checkpoint`);
    if (fastDrafts) m.draftKernels = getKernels('fast'); // drafts only: the main rows stay exact
    const spec = m.speculator!;
    assert.ok(spec, 'the tiny checkpoints have an MTP block');
    const V = m.vocabSize;
    const input = arr(name, 'input_ids') as Int32Array;
    const d = arr(name, 'decode_ids') as Int32Array;
    const dl = arr(name, 'decode_logits') as Float32Array;
    const md = arr(name, 'mtp_decode_logits') as Float32Array;
    const wrong = (t: number) => (t + 1) % V;
    const state = m.newState() as ModelState;
    sameBits(m.forward([{ state, tokens: input, mtp: 'run' }])[0]!, arr(name, 'prefill_logits') as Float32Array, 'prefill');
    assert.ok(spec.canDraft(state));
    const mtpMatches = (l: Float32Array, want: Float32Array, what: string) => (fastDrafts ? assert.equal(l.length, V) : sameBits(l, want, what));
    mtpMatches(spec.draft([{ state, next: d[0]! }])[0]!, arr(name, 'mtp_prefill_logits') as Float32Array, 'mtp prefill');
    // j: the decode token fed next; a plan of plain, accepted and rejected steps
    const plan: Array<'plain' | 'accept' | 'reject'> = ['plain', 'accept', 'reject', 'accept', 'reject', 'accept'];
    let j = 0;
    for (const step of plan) {
      if (step === 'plain') {
        sameBits(m.forward([{ state, tokens: d.subarray(j, j + 1), mtp: 'defer' }])[0]!, row(dl, j, V), `decode ${j}`);
        j += 1;
      } else {
        const draft = step === 'accept' ? d[j + 1]! : wrong(d[j + 1]!);
        const l = m.forward([{ state, tokens: Int32Array.of(d[j]!, draft), drafts: 1, mtp: 'defer' }])[0]!;
        assert.equal(l.length, 2 * V);
        sameBits(row(l, 0, V), row(dl, j, V), `verify ${j}`);
        if (step === 'accept') {
          sameBits(row(l, 1, V), row(dl, j + 1, V), `verify ${j + 1}`);
          spec.acceptDrafts(state);
          j += 2;
        } else {
          spec.rejectDrafts(state);
          j += 1;
        }
      }
      assert.equal(state.position, input.length + j);
      mtpMatches(spec.draft([{ state, next: d[j]! }])[0]!, row(md, j - 1, V), `mtp after ${step} (${j})`);
    }
  });
}

async function boundaries(m: Dsv4Model, tokens: Int32Array, from: number, to: number, drafts: number): Promise<void> {
  const spec = m.speculator!;
  const base = m.newState() as ModelState;
  m.forward([{ state: base, tokens: tokens.subarray(0, from) }]);
  for (let p = from; p < to; p++) {
    const plain = base.clone();
    const want = m.forward([{ state: plain, tokens: tokens.subarray(p, p + 1) }])[0]!;
    const spec1 = base.clone();
    const seg = new Int32Array(1 + drafts);
    seg[0] = tokens[p]!;
    for (let i = 1; i <= drafts; i++) seg[i] = (tokens[p + i]! * 7 + i) % m.vocabSize;
    const got = m.forward([{ state: spec1, tokens: seg, drafts }])[0]!;
    sameBits(got.subarray(0, m.vocabSize), want, `position ${p}: first row`);
    spec.rejectDrafts(spec1);
    assert.equal(mainState(spec1), mainState(plain), `position ${p}: state after rejecting ${drafts} drafts`);
    // the restored state goes on like the plain one
    const next = tokens.subarray(p + 1, p + 3);
    sameBits(m.forward([{ state: spec1, tokens: next }])[0]!, m.forward([{ state: plain, tokens: next }])[0]!, `position ${p}: after`);
    m.forward([{ state: base, tokens: tokens.subarray(p, p + 1) }]);
  }
}

test('tiny-a: rejected drafts leave the state as before, across the ring wrap and ratio-4 / ratio-128 block ends', async () => {
  const m = await loadModel(`${dir('tiny-a')}/checkpoint`);
  const t = arr('tiny-a', 'input_ids') as Int32Array;
  await boundaries(m, t, 122, 131, 1); // 127 ends a ratio-128 block; every 4th a ratio-4 one
  await boundaries(m, t, 124, 130, 3);
});

test('tiny-b: rejected drafts leave the state as before at ratio-32 block ends', async () => {
  const m = await loadModel(`${dir('tiny-b')}/checkpoint`);
  const t = arr('tiny-b', 'input_ids') as Int32Array;
  await boundaries(m, t, 60, 66, 1); // 63 ends a ratio-32 block
  await boundaries(m, t, 61, 65, 2);
});

test('drafts are refused when they are not fewer than the segment, or exceed the window', async () => {
  const m = await loadModel(`${dir('tiny-a')}/checkpoint`);
  const s = m.newState();
  assert.throws(() => m.forward([{ state: s, tokens: Int32Array.of(1, 2), drafts: 2 }]), /2 drafts in a segment of 2 tokens/);
  assert.throws(() => m.forward([{ state: s, tokens: new Int32Array(80), drafts: 70 }]), /exceed the window/);
  assert.throws(() => m.speculator!.draft([{ state: m.newState(), next: 1 }]), /not in step/);
});

test('pending MTP rows survive clone and serialize: the copies draft exactly like the original', async () => {
  const m = await loadModel(`${dir('tiny-a')}/checkpoint`);
  const spec = m.speculator!;
  const input = arr('tiny-a', 'input_ids') as Int32Array;
  const d = arr('tiny-a', 'decode_ids') as Int32Array;
  const state = m.newState() as ModelState;
  m.forward([{ state, tokens: input, mtp: 'run' }]);
  // prefill leaves 1 pending row; an accepted verify step adds 2 rows and their 2 tokens
  m.forward([{ state, tokens: Int32Array.of(d[0]!, d[1]!), drafts: 1, mtp: 'defer' }]);
  spec.acceptDrafts(state);
  assert.equal(state.mtpRows, 3);
  const copies = [state.clone() as ModelState, m.restoreState(state.serialize()) as ModelState];
  const want = spec.draft([{ state, next: d[2]! }])[0]!;
  for (const c of copies) {
    assert.equal(c.mtpRows, 3);
    assert.ok(spec.canDraft(c));
    sameBits(spec.draft([{ state: c, next: d[2]! }])[0]!, want, 'draft of a copy');
    assert.deepEqual(c.serialize(), state.serialize());
  }
});
