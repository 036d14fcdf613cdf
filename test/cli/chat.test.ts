// `dsv4 chat --url` driven through a stdin script against a scripted endpoint: streaming output,
// thinking markers, slash commands, save/load, and Ctrl-C stopping only the current answer.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { collect, runCli, startCli, waitForOutput } from './cli-process.js';
import { startStub, type Stub } from './stub-server.js';

let stub: Stub;
const dir = mkdtempSync(join(tmpdir(), 'dsv4-chat-'));

before(async () => {
  stub = await startStub((req) => {
    const last = (req.messages as { content: string }[]).at(-1)!.content;
    if (last.includes('forever')) return { content: ['Counting'], endless: true };
    if (last.includes('weather')) return { reasoning: ['Need', ' a tool.'], content: [], toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] };
    return { reasoning: ['Let me', ' think.'], content: ['Hello', ', ', 'world!'] };
  });
});
after(() => stub.close());

test('a scripted chat streams thinking and answers, and commands change the next request', async () => {
  const file = join(dir, 'saved.json');
  const script = ['hi there', '/think off', '/temp 0.3', 'second \\', 'line', `/save ${file}`, '/exit', 'never sent'].join('\n') + '\n';
  const r = await runCli(['chat', '--url', stub.url, '--system', 'be brief'], script);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\[thinking\]\nLet me think\.\n\[\/thinking\]\nHello, world!\n/);
  assert.match(r.stdout, /10 prompt \(8 cached\) · 5 completion \(2 thinking\)/);
  assert.match(r.stderr, /Thinking off\./);
  assert.equal(stub.requests.length, 2, 'the line after /exit is never sent');
  const [first, second] = stub.requests as Record<string, any>[];
  assert.deepEqual(first!.thinking, { type: 'enabled' });
  assert.equal(first!.reasoning_effort, 'high');
  assert.equal(first!.stream, true);
  assert.deepEqual(first!.messages, [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi there' },
  ]);
  assert.deepEqual(second!.thinking, { type: 'disabled' });
  assert.equal(second!.reasoning_effort, undefined, 'effort with thinking disabled is a 400 (api spec §5.6)');
  assert.equal(second!.temperature, 0.3);
  assert.equal(second!.messages.length, 4);
  assert.deepEqual(second!.messages[2], { role: 'assistant', content: 'Hello, world!', reasoning_content: 'Let me think.' });
  assert.deepEqual(second!.messages[3], { role: 'user', content: 'second \nline' });

  const saved = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(saved.messages.length, 4);
  assert.equal(saved.system, 'be brief');
  assert.equal(saved.settings.thinking, false);
});

test('/load restores a conversation and /reset clears it; bad commands are one-line errors', async () => {
  const file = join(dir, 'load.json');
  writeFileSync(file, JSON.stringify([{ role: 'user', content: 'old question' }, { role: 'assistant', content: 'old answer' }]));
  stub.requests.length = 0;
  const script = [`/load ${file}`, 'new question', '/reset', '/system be terse', '/model deepseek-v4-pro', 'fresh', '/effort extreme', '/nope', '/load /no/such/file'].join('\n') + '\n';
  const r = await runCli(['chat', '--url', stub.url], script);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Loaded 2 messages/);
  assert.match(r.stderr, /error: \/effort takes high or max/);
  assert.match(r.stderr, /error: unknown command \/nope \(try \/help\)/);
  assert.match(r.stderr, /error: cannot load \/no\/such\/file: ENOENT/);
  const msgs = stub.requests.map((q) => (q.messages as { content: string }[]).map((m) => m.content));
  assert.deepEqual(msgs, [['old question', 'old answer', 'new question'], ['be terse', 'fresh']]);
  assert.equal(stub.requests[1]!.model, 'deepseek-v4-pro');
});

test('tool calls are shown on their own line', async () => {
  const r = await runCli(['chat', '--url', stub.url], 'weather?\n');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /⚙ get_weather\(\{"city":"Paris"\}\)/);
});

test('Ctrl-C stops the current answer, not the program', async () => {
  stub.disconnects = 0;
  stub.requests.length = 0;
  const child = startCli(['chat', '--url', stub.url, '--no-think']);
  const done = collect(child);
  child.stdin.write('count forever\n');
  await waitForOutput(child, 'Counting more');
  child.kill('SIGINT');
  await waitForOutput(child, '[stopped]');
  child.stdin.end('hello again\n/exit\n');
  const r = await done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Hello, world!/, 'the chat went on after the interrupt');
  await stub.disconnected(1);
  assert.equal(stub.disconnects, 1, 'the stopped stream was closed');
  const second = stub.requests[1]!.messages as { role: string; content: string }[];
  assert.equal(second[1]!.role, 'assistant', 'the stopped answer is kept as far as it got');
  assert.match(second[1]!.content, /^Counting( more)+$/);
});

test('chat errors are one line with an exit code', async () => {
  const r = await runCli(['chat', '--url', 'http://127.0.0.1:9', '--model', 'x'], '');
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'dsv4: use either --model DIR or --url URL, not both\n');
  const m = await runCli(['chat', '--model', join(dir, 'missing')], '');
  assert.equal(m.code, 4);
  assert.match(m.stderr, /^dsv4: --model .*missing: no such directory\n$/);
});
