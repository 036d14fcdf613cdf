// The terminal view of a turn on a (fake) TTY: thinking folded into one line by moving the cursor
// up over exactly the rows it took, left alone when it scrolled off screen or is all there is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TurnRenderer } from '../../src/cli/chat/render.js';

const CLEAR = '\r\x1b[K';

function tty(rows: number) {
  const out = { text: '', isTTY: true, columns: 20, rows, write: (s: string) => ((out.text += s), true) };
  return out;
}
const result = (content: string, reasoning: string) => ({ message: { role: 'assistant' as const, content, reasoning_content: reasoning }, finishReason: 'stop' });

test('thinking folds once the answer starts', () => {
  const out = tty(24);
  const view = new TurnRenderer(out, { fold: true, now: () => 0 });
  view.reasoning('abc\n');
  view.reasoning('d'.repeat(25)); // rows: "thinking…", "abc", 25 chars on 20 columns = 2
  view.content('Hi');
  view.end(result('Hi', 'abc\n' + 'd'.repeat(25)));
  assert.equal(
    out.text,
    `${CLEAR}\x1b[2mthinking…\nabc\n${'d'.repeat(25)}` + // the spinner line cleared, then the dim block
      '\x1b[0m\r\x1b[3A\x1b[J' + // up 3 rows to the block's first row, erase to the end of screen
      '\x1b[2m▸ thought for 0.0s, 2 tokens (/thoughts to expand)\x1b[0m\nHi\n',
  );
});

test('thinking taller than the screen, or with no answer after it, is not folded', () => {
  const tall = tty(3);
  const a = new TurnRenderer(tall, { fold: true, now: () => 0 });
  a.reasoning('1\n2\n3\n4');
  a.content('x');
  assert.doesNotMatch(tall.text, /\x1b\[\d+A/);
  assert.match(tall.text, /4\x1b\[0m\nx$/);

  const only = tty(24);
  const b = new TurnRenderer(only, { fold: true, now: () => 0 });
  b.reasoning('all thinking');
  b.end({ ...result('', 'all thinking'), finishReason: 'length' });
  assert.doesNotMatch(only.text, /thought for/);
  assert.match(only.text, /all thinking\x1b\[0m\n\x1b\[2m\[cut at max tokens\]\x1b\[0m\n$/);
});
