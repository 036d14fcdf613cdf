import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutputText } from '../../src/engine/stop.js';

const enc = (s: string) => new TextEncoder().encode(s);

test('stop strings match across token boundaries and are never emitted', () => {
  const t = new OutputText(['END', 'xyz']);
  const out: string[] = [];
  let stopped = false;
  for (const piece of ['Hello E', 'N', 'ope E', 'N', 'D tail']) {
    const r = t.push(enc(piece));
    out.push(r.text);
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  assert.equal(stopped, true);
  assert.equal(out.join(''), 'Hello ENope ');
  assert.deepEqual(out, ['Hello ', '', 'ENope ', '', '']);
});

test('held text is released at the end when no stop matches', () => {
  const t = new OutputText(['</answer>']);
  assert.equal(t.push(enc('a </ans')).text, 'a ');
  assert.equal(t.flush(), '</ans');
  assert.equal(t.emitted, 'a </ans');
});

test('multi-byte characters split across tokens decode once complete', () => {
  const bytes = enc('é€😀');
  const t = new OutputText([]);
  let s = '';
  for (const b of bytes) s += t.push(Uint8Array.of(b)).text;
  assert.equal(s, 'é€😀');
  const u = new OutputText([]);
  assert.equal(u.push(bytes.subarray(0, 1)).text, '');
  assert.equal(u.flush(), '\ufffd');
});

test('a stop string inside one token cuts the text before it', () => {
  const t = new OutputText(['\n\n']);
  const r = t.push(enc('line\n\nnext'));
  assert.deepEqual(r, { text: 'line', stopped: true });
});
