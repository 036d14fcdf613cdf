// `dsv4 serve` start-up: the model loads (under the spinner on a terminal), then the web chat and API base
// URLs are printed; they answer; SIGTERM shuts down cleanly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startupUrls } from '../../src/cli/commands/serve.js';
import { testModelDir } from '../server/harness.js';
import { collect, startCli } from './cli-process.js';

test('startup URLs: web chat only when mounted, wildcard hosts shown as loopback', () => {
  assert.equal(
    startupUrls('http://0.0.0.0:8000', true),
    '  Web chat       http://127.0.0.1:8000/\n' +
      '  OpenAI API     http://127.0.0.1:8000  (also http://127.0.0.1:8000/v1, beta features on http://127.0.0.1:8000/beta)\n' +
      '  Anthropic API  http://127.0.0.1:8000/anthropic\n',
  );
  assert.doesNotMatch(startupUrls('http://127.0.0.1:9', false), /Web chat/);
  assert.match(startupUrls('http://[::]:9', false), /Anthropic API {2}http:\/\/127\.0\.0\.1:9\/anthropic/);
});

test('dsv4 serve prints the URLs once listening; they answer; SIGTERM exits 0', { timeout: 300_000 }, async () => {
  const dir = await testModelDir();
  const child = startCli(['serve', '--model', dir, '--port', '0', '--context-length', '1024']);
  const done = collect(child);
  let err = '';
  await new Promise<void>((ok, fail) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d;
      if (err.includes('Anthropic API')) ok();
    });
    child.on('close', () => fail(new Error(`serve exited early: ${err}`)));
  });
  const base = /OpenAI API {5}(\S+)/.exec(err)![1]!;
  assert.match(err, new RegExp(`Anthropic API  ${base}/anthropic\\n`));
  assert.equal((await fetch(`${base}/anthropic`, { method: 'HEAD' })).status, 200);
  const models = (await (await fetch(`${base}/v1/models`)).json()) as { data: unknown[] };
  assert.ok(models.data.length >= 1);
  if (err.includes('Web chat')) assert.match(await (await fetch(`${base}/`)).text(), /<html/i);
  else assert.equal((await fetch(`${base}/`)).status, 404);
  child.kill('SIGTERM');
  const r = await done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /shutting down/);
});
