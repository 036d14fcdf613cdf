// `dsv4 run` and `dsv4 chat` against the real model: the embedded default (random weights, real
// V4 tokenizer), in-process (`--model`) and through a running server (`--url`).
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureDefaultModel } from '../../src/cli/default-model.js';
import { serveModel, type ServingModel } from '../../src/server/index.js';
import { runCli } from './cli-process.js';

let modelDir: string;
let server: ServingModel;

before(async () => {
  modelDir = await ensureDefaultModel({ dir: join(tmpdir(), 'dsv4-test-default-model'), progress: false });
  server = await serveModel({ modelDir, config: { port: 0, cacheHitGranularity: 1 }, engine: { maxSeqLen: 4096 }, web: false });
});
after(() => server?.shutdown());

test('dsv4 run --model prints only the answer; --json carries the same greedy answer and its usage', { timeout: 300_000 }, async () => {
  const args = ['run', '--model', modelDir, '--context-length', '8192', '--no-think', '--temperature', '0', '--max-tokens', '4', 'Hello'];
  const plain = await runCli(args);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stderr, 'dsv4: answer cut at --max-tokens\n');
  const json = await runCli([...args, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const res = JSON.parse(json.stdout);
  const content: string = res.choices[0].message.content;
  assert.ok(content.length > 0);
  assert.equal(plain.stdout, content.endsWith('\n') ? content : content + '\n', 'greedy decoding gives the same answer in both runs');
  assert.equal(res.choices[0].finish_reason, 'length');
  assert.equal(res.usage.completion_tokens, 4);
  assert.equal(res.choices[0].message.reasoning_content, undefined);
});

test('dsv4 chat --url talks to a running server, thinking first', { timeout: 300_000 }, async () => {
  const r = await runCli(['chat', '--url', server.url, '--max-tokens', '3'], 'Hi\n/think off\nAnd now?\n/exit\n');
  assert.equal(r.code, 0, r.stderr);
  // Turn 1 (thinking on): the three tokens are thinking unless the random model closed it at once.
  assert.match(r.stdout, /^\[thinking\]\n/);
  const usages = r.stdout.match(/\d+ prompt( \(\d+ cached\))? · 3 completion[^\n]*\n/g) ?? [];
  assert.equal(usages.length, 2, r.stdout);
  assert.match(usages[1]!, /^\d+ prompt( \(\d+ cached\))? · 3 completion · /, 'turn 2 has no thinking tokens');
  assert.equal((r.stdout.match(/\[cut at max tokens\]/g) ?? []).length, 2);
});
