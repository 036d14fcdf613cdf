// Progress lines: formatting, redraw throttling, and silence when not enabled.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createProgress, formatAmount, formatProgressLine, progressEnabled } from '../../src/cli/progress.js';
import { terminalRows, usageLine } from '../../src/cli/chat/render.js';

function sink() {
  const out = { text: '', columns: 200, isTTY: true, write: (s: string) => ((out.text += s), true) };
  return out;
}

test('progress line layout', () => {
  assert.equal(formatProgressLine('Loading', 512, 1024, 'bytes', 1500, null), 'Loading [############............]  50%  512 B / 1.0 KB  1.5s');
  assert.equal(formatProgressLine('Prefill', 300, undefined, 'tokens', 200, null), 'Prefill  300 tok  0.2s');
  assert.equal(formatProgressLine('Loading', 1, 1, 'items', 0, 'ready'), 'Loading: ready');
  assert.equal(formatAmount(3 * 2 ** 30, 'bytes'), '3.0 GB');
  assert.equal(formatAmount(12345, 'items'), '12,345');
});

test('redraws are throttled and the final state always drawn', () => {
  let t = 0;
  const out = sink();
  const p = createProgress('Work', { total: 100, stream: out as never, enabled: true, now: () => t, unit: 'items' });
  p.update(10);
  t = 50;
  p.update(20); // within 100 ms: skipped
  t = 200;
  p.update(30);
  p.update(100); // reaching the total always draws
  t = 1000;
  p.finish();
  const draws = out.text.split('\r\x1b[K').filter(Boolean);
  assert.deepEqual(
    draws.map((d) => d.replace(/\s+\d+\.\ds\n?$/, '')),
    ['Work [##......................]  10%  10 / 100', 'Work [#######.................]  30%  30 / 100', 'Work [########################] 100%  100 / 100', 'Work: done in'],
  );
  assert.ok(out.text.endsWith('\n'));
});

test('disabled progress writes nothing', () => {
  const out = sink();
  const p = createProgress('Quiet', { total: 10, stream: out as never, enabled: false });
  p.update(5);
  p.finish();
  p.fail();
  assert.equal(out.text, '');
  assert.equal(progressEnabled({ DSV4_PROGRESS: '0' }), false);
  assert.equal(progressEnabled({ DSV4_PROGRESS: '1' }), true);
});

test('terminal rows count wrapping and wide characters', () => {
  assert.equal(terminalRows('abc', 10), 1);
  assert.equal(terminalRows('a'.repeat(10), 10), 1);
  assert.equal(terminalRows('a'.repeat(11), 10), 2);
  assert.equal(terminalRows('x\n\ny', 10), 3);
  assert.equal(terminalRows('中'.repeat(6), 10), 2);
});

test('usage line', () => {
  const u = { prompt_tokens: 300, completion_tokens: 40, total_tokens: 340, prompt_cache_hit_tokens: 256, completion_tokens_details: { reasoning_tokens: 30 } };
  assert.equal(usageLine(u, 2000), '300 prompt (256 cached) · 40 completion (30 thinking) · 20.0 tok/s');
  assert.equal(usageLine(undefined, 1), '');
});
