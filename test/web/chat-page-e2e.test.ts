// The web chat page end to end: the real server (`serveModel`, as `dsv4 serve` runs it) over the
// embedded default model, driven in headless Chromium through two full exchanges. Saves the
// screenshot test-output/web-chat.png.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { ensureDefaultModel } from '../../src/cli/default-model.js';
import { serveModel, type ServingModel } from '../../src/server/index.js';
import { browserSkipReason, launchChromium, TEST_OUTPUT } from './browser.js';

// Browser globals inside page callbacks (the project's tsconfig has no DOM lib).
declare const document: any;

const skip = browserSkipReason();
let server: ServingModel;
let browser: Browser;

before(async () => {
  if (skip) return;
  const modelDir = await ensureDefaultModel({ dir: join(tmpdir(), 'dsv4-test-default-model'), progress: false });
  server = await serveModel({ modelDir, config: { port: 0, cacheHitGranularity: 1 }, engine: { maxSeqLen: 4096 }, web: true });
  browser = (await launchChromium()).browser;
});
after(async () => {
  await browser?.close();
  await server?.shutdown();
});

test('the page is served at / with its assets', { skip: skip ?? false }, async () => {
  for (const [path, type] of [['/', 'text/html'], ['/app.js', 'text/javascript'], ['/style.css', 'text/css']]) {
    const res = await fetch(server.url + path);
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get('content-type') ?? '', new RegExp(`^${type}`), path);
  }
  const html = await (await fetch(server.url + '/')).text();
  assert.doesNotMatch(html, /https?:\/\//, 'no external network at run time');
});

test('two full exchanges with the real model in the browser', { skip: skip ?? false, timeout: 600_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.setDefaultTimeout(300_000);
  await page.goto(server.url + '/');
  await page.waitForFunction(() => document.querySelectorAll('#setting-model option').length > 0);
  const models = await page.locator('#setting-model option').allInnerTexts();
  assert.ok(models.includes('deepseek-v4-flash'), `models listed: ${models}`);
  await page.fill('#setting-max-tokens', '6');

  for (const [n, text] of [[1, 'Hello! Who are you?'], [2, 'Tell me more.']] as const) {
    await page.fill('#prompt', text);
    await page.press('#prompt', 'Enter');
    await page.waitForFunction((k) => document.body.dataset.state === 'idle' && document.querySelectorAll('.msg.assistant .usage').length === k, n);
    const msg = page.locator('.msg.assistant').last();
    assert.equal(await msg.locator('.error').count(), 0, (await msg.locator('.error').allInnerTexts()).join());
    const usage = await msg.locator('.usage').innerText();
    // Thinking is on by default: the 6 tokens are thinking unless the model closed it.
    assert.match(usage, /^\[length\] · \d+ prompt \(\d+ cache hit\) · 6 completion( \(\d thinking\))? · \$[\d.e-]+ · [\d.]+ tok\/s$/);
    assert.equal(await msg.locator('details.thinking[open]').count(), 0, 'thinking is folded once the answer is complete');
    const shown = (await msg.locator('.thinking .text').allTextContents()).join('') + (await msg.locator('.content').allTextContents()).join('');
    assert.ok(shown.length > 0, 'the generated text is on the page');
  }
  assert.match(await page.locator('#totals').innerText(), /^\d+ in \(\d+ cached\) · 12 out · \$/);
  assert.deepEqual(errors, []);
  const elsewhere = requests.filter((u) => !u.startsWith(server.url + '/'));
  assert.deepEqual(elsewhere, [], 'the page requests nothing outside its own server');
  assert.ok(requests.some((u) => u.endsWith('/chat/completions')));
  await page.screenshot({ path: join(TEST_OUTPUT, 'web-chat.png') });
  await page.close();
});
