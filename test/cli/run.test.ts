// `dsv4 run`: only the answer on stdout, --json for the whole response, stdin prompts, exit codes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { closedPort, collect, runCli, startCli, waitForOutput } from './cli-process.js';
import { startStub, type Stub } from './stub-server.js';

let stub: Stub;
before(async () => {
  stub = await startStub((req) => {
    const text = JSON.stringify(req.messages);
    if (text.includes('forever')) return { content: ['Counting'], endless: true };
    if (text.includes('ponder')) return { reasoning: ['only', ' thoughts'], content: [] };
    return { reasoning: ['hidden', ' thoughts'], content: ['The answer', ' is 4.'] };
  });
});
after(() => stub.close());

test('only the answer goes to stdout', async () => {
  const r = await runCli(['run', '--url', stub.url, 'what', 'is', '2+2?']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'The answer is 4.\n');
  assert.equal(r.stderr, '');
  const req = stub.requests.at(-1)!;
  assert.deepEqual(req.messages, [{ role: 'user', content: 'what is 2+2?' }]);
});

test('--show-thinking copies the thinking to stderr', async () => {
  const r = await runCli(['run', '--url', stub.url, '--show-thinking', 'q']);
  assert.equal(r.stdout, 'The answer is 4.\n');
  assert.equal(r.stderr, 'hidden thoughts\n');
});

test('an answer that is all thinking says so on stderr', async () => {
  const r = await runCli(['run', '--url', stub.url, 'ponder']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'dsv4: no answer after the thinking (--show-thinking prints it; --no-think skips it)\n');
});

test('the prompt can come from stdin, with a system prompt', async () => {
  const r = await runCli(['run', '--url', stub.url, '--system', 'Review this', '-'], 'diff --git a b\n');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(stub.requests.at(-1)!.messages, [
    { role: 'system', content: 'Review this' },
    { role: 'user', content: 'diff --git a b\n' },
  ]);
});

test('--json prints the full response object', async () => {
  const r = await runCli(['run', '--url', stub.url, '--json', '--no-think', '--temperature', '0', 'q']);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.choices[0].message.content, 'The answer is 4.');
  assert.equal(res.usage.prompt_cache_hit_tokens, 8);
  const req = stub.requests.at(-1)!;
  assert.equal(req.stream, false);
  assert.equal(req.temperature, 0);
  assert.deepEqual(req.thinking, { type: 'disabled' });
});

test('errors are one line on stderr with meaningful exit codes', async () => {
  const closed = await closedPort();
  const cases: [string[], string, number, RegExp][] = [
    [['run', '--url', `127.0.0.1:${closed}`, 'hi'], '', 3, /^dsv4: cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused \(is the server running\?\)\n$/],
    [['run', '--url', stub.url + '/nowhere', 'hi'], '', 3, /^dsv4: http:\/\/127\.0\.0\.1:\d+\/nowhere\/chat\/completions answered 404: Not Found: \/nowhere\/chat\/completions\n$/],
    [['run', '--url', stub.url, '--temperature', 'hot', 'hi'], '', 2, /^dsv4: --temperature hot: expected a number from 0 to 2\n$/],
    [['run', '--url', stub.url, '--max-tokens', '0', 'hi'], '', 2, /^dsv4: --max-tokens 0: expected a whole number >= 1\n$/],
    [['run', '--url', stub.url], '', 2, /^dsv4: no prompt: stdin was empty\n$/],
    [['run', '--model', '/definitely/not/here', 'hi'], '', 4, /^dsv4: --model \/definitely\/not\/here: no such directory\n$/],
    [['run', '--url', stub.url, '--context-length', '9000', 'hi'], '', 2, /^dsv4: --context-length applies to a local model, not to --url\n$/],
    [['run', '--frob', 'hi'], '', 2, /^dsv4: unknown option '--frob' \(see 'dsv4 run --help'\)\n$/],
    [['run', '--effort', 'low', 'hi'], '', 2, /^dsv4: option '--effort <level>' argument 'low' is invalid\. Allowed choices are high, max\. \(see 'dsv4 run --help'\)\n$/],
    [['chta'], '', 2, /^dsv4: unknown command 'chta' \(Did you mean chat\?\) \(see 'dsv4 --help'\)\n$/],
  ];
  for (const [args, input, code, stderr] of cases) {
    const r = await runCli(args, input);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, stderr);
    assert.equal(r.stdout, '');
  }
});

test('help is complete: every command has a summary, and dsv4 --help says how to start and which model runs', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  for (const cmd of ['chat', 'run', 'serve']) assert.match(top.stdout, new RegExp(`^  ${cmd} `, 'm'));
  assert.match(top.stdout, /Getting started:/);
  assert.match(top.stdout, /random weights/);
  const commands = [...top.stdout.matchAll(/^  (\w+) .*$/gm)].map((m) => m[1]!).filter((c) => c !== 'help' && c !== 'dsv4');
  for (const cmd of commands) {
    const h = await runCli([cmd, '--help']);
    assert.equal(h.code, 0, cmd);
    assert.match(h.stdout, new RegExp(`^Usage: dsv4 ${cmd} `), cmd);
    assert.ok(h.stdout.split('\n').length > 5, `${cmd} --help has a description and options`);
  }
});

test('Ctrl-C ends a run with exit code 130 and closes the stream', async () => {
  stub.disconnects = 0;
  const child = startCli(['run', '--url', stub.url, 'count forever']);
  const done = collect(child);
  await waitForOutput(child, 'Counting more');
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130);
  assert.equal(r.stderr, 'dsv4: interrupted\n');
  assert.match(r.stdout, /^Counting( more)+\n$/);
  await stub.disconnected(1);
  assert.equal(stub.disconnects, 1);
});

test('--memory-budget: a size for a local model, a usage error with --url or a bad size', async () => {
  const withUrl = await runCli(['run', '--url', stub.url, '--memory-budget', '1G', 'q']);
  assert.equal(withUrl.code, 2);
  assert.match(withUrl.stderr, /--memory-budget applies to a local model/);
  const bad = await runCli(['run', '--memory-budget', 'lots', 'q']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /expected a size/);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
});
