// FIM and chat-prefix completion prompts (deepseek-api §6.1, §6.3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTokenizer, renderFim, renderPrefixCompletion, StreamParser, PyError, benchmarkTokenizer, benchCorpus } from '../../src/tokenizer/index.js';

test('FIM prompt: BOS fim_begin prefix fim_hole suffix fim_end, each marker one token', async () => {
  const tok = await loadTokenizer();
  const p = renderFim('def add(a, b):\n    ', '\n    return c\n');
  assert.equal(p, '<｜begin▁of▁sentence｜><｜fim▁begin｜>def add(a, b):\n    <｜fim▁hole｜>\n    return c\n<｜fim▁end｜>');
  const ids = tok.encode(p);
  assert.deepEqual([ids[0], ids[1], ids[ids.length - 1]], [0, 128801, 128802]);
  assert.ok(ids.includes(128800));
  assert.equal(renderFim('x', null, { addBos: false }), '<｜fim▁begin｜>x<｜fim▁hole｜><｜fim▁end｜>');
});

test('prefix completion, chat mode: the assistant prefix without EOS', () => {
  const r = renderPrefixCompletion(
    [{ role: 'user', content: 'Please write quick sort code' }, { role: 'assistant', content: '```python\n', prefix: true }],
    { thinkingMode: 'chat' },
  );
  assert.equal(r.prompt, '<｜begin▁of▁sentence｜><｜User｜>Please write quick sort code<｜Assistant｜></think>```python\n');
  assert.equal(r.continues, 'content');
});

test('prefix completion, thinking mode: with content the reasoning is closed; reasoning alone stays open', () => {
  const base = [{ role: 'user', content: 'q' }];
  const withContent = renderPrefixCompletion([...base, { role: 'assistant', reasoning_content: 'r', content: 'c', prefix: true }], { thinkingMode: 'thinking' });
  assert.equal(withContent.prompt, '<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><think>r</think>c');
  assert.equal(withContent.continues, 'content');
  const reasoningOnly = renderPrefixCompletion([...base, { role: 'assistant', reasoning_content: 'Let me', content: null, prefix: true }], { thinkingMode: 'thinking' });
  assert.equal(reasoningOnly.prompt, '<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><think>Let me');
  assert.equal(reasoningOnly.continues, 'reasoning');
  const p = new StreamParser('thinking', { startIn: reasoningOnly.continues });
  p.push(' think.</think>Answer<｜end▁of▁sentence｜>');
  assert.deepEqual([p.message().reasoning_content, p.message().content], [' think.', 'Answer']);
  const noReasoning = renderPrefixCompletion([...base, { role: 'assistant', content: 'c', prefix: true }], { thinkingMode: 'thinking' });
  assert.equal(noReasoning.prompt, '<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><think></think>c');
});

test('prefix completion needs a final assistant message with prefix: true', () => {
  assert.throws(() => renderPrefixCompletion([{ role: 'user', content: 'q' }], { thinkingMode: 'chat' }), PyError);
});

test('benchmark helper reports positive rates on a small corpus', async () => {
  const tok = await loadTokenizer();
  const r = benchmarkTokenizer(tok, benchCorpus(5000), 1);
  assert.ok(r.tokens > 1000 && r.chars >= 5000);
  assert.ok(r.warmEncodeTokensPerSecond > 0 && r.streamDecodeTokensPerSecond > 0);
});
