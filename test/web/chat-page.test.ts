// The web chat page in headless Chromium against a scripted endpoint: streaming, folded thinking,
// settings reaching the request, tool calls with a result sent back, Stop, usage and cost, and
// conversations kept across a reload. (The real server and model: chat-page-e2e.test.ts.)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startStub, type Stub } from '../cli/stub-server.js';
import { browserSkipReason, launchChromium, TEST_OUTPUT } from './browser.js';

// Browser globals inside page callbacks (the project's tsconfig has no DOM lib).
declare const document: any;

const skip = browserSkipReason();
let stub: Stub;
let browser: Browser;
let page: Page;

before(async () => {
  if (skip) return;
  stub = await startStub((req) => {
    const last = (req.messages as { role: string; content: string }[]).at(-1)!;
    if (last.role === 'tool') return { reasoning: ['Got it.'], content: [`It is ${last.content}.`] };
    if (last.content.includes('forever')) return { content: ['Counting'], endless: true };
    if (last.content.includes('weather')) return { reasoning: ['Need', ' a tool.'], content: [], toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] };
    return { reasoning: ['Let me', ' think.'], content: ['Hello', ', ', 'world!\n```js\nx = 1\n```'] };
  });
  const b = await launchChromium();
  browser = b.browser;
  page = await b.context.newPage();
  page.on('pageerror', (err) => assert.fail(`page error: ${err.message}`));
});
after(async () => {
  await browser?.close();
  await stub?.close();
});

/** Sends a prompt and waits until the page is idle again with `count` assistant messages. */
async function ask(text: string, count: number): Promise<void> {
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  await page.waitForFunction((n) => document.body.dataset.state === 'idle' && document.querySelectorAll('.msg.assistant').length === n, count);
}

test('a full exchange in the browser', { skip: skip ?? false }, async () => {
  await page.goto(stub.url + '/');
  assert.equal(await page.title(), 'dsv4 chat');
  await page.waitForFunction(() => document.querySelectorAll('#setting-model option').length === 2);

  await ask('Hi there', 1);
  const msg = page.locator('.msg.assistant').last();
  assert.equal(await msg.locator('.content').textContent(), 'Hello, world!\nx = 1\n');
  assert.equal(await msg.locator('.content pre code').innerText(), 'x = 1\n');
  // Thinking folds once the answer starts, and opens on a click.
  const thinking = msg.locator('details.thinking');
  assert.equal(await thinking.evaluate((d: any) => d.open), false);
  assert.match(await thinking.locator('summary').innerText(), /^Thought for \d+\.\d s$/);
  await thinking.locator('summary').click();
  assert.equal(await thinking.locator('.text').innerText(), 'Let me think.');
  // Usage with cache hits and cost (Flash: 8 hit, 2 miss, 5 out).
  const usage = await msg.locator('.usage').innerText();
  assert.match(usage, /^10 prompt \(8 cache hit\) · 5 completion \(2 thinking\) · \$0\.0000017/);
  assert.match(await page.locator('#totals').innerText(), /^10 in \(8 cached\) · 5 out · \$0\.0000017$/);
  const first = stub.requests.at(-1)!;
  assert.deepEqual(first.thinking, { type: 'enabled' });
  assert.equal(first.reasoning_effort, 'high');

  // Settings reach the next request: thinking off, temperature, model.
  await page.uncheck('#setting-thinking');
  await page.locator('#setting-temperature').fill('0.3');
  await page.selectOption('#setting-model', 'deepseek-v4-pro');
  await ask('Again', 2);
  const second = stub.requests.at(-1)! as Record<string, any>;
  assert.deepEqual(second.thinking, { type: 'disabled' });
  assert.equal(second.reasoning_effort, undefined);
  assert.equal(second.temperature, 0.3);
  assert.equal(second.model, 'deepseek-v4-pro');
  assert.deepEqual(second.messages.slice(0, 2), [
    { role: 'user', content: 'Hi there' },
    { role: 'assistant', content: 'Hello, world!\n```js\nx = 1\n```', reasoning_content: 'Let me think.' },
  ]);
  await page.screenshot({ path: join(TEST_OUTPUT, 'web-chat-scripted.png') });
});

test('tool calls are shown and a result goes back', { skip: skip ?? false }, async () => {
  await page.check('#setting-thinking');
  await page.click('#settings details summary');
  await page.fill('#setting-tools', JSON.stringify([{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]));
  await ask("What's the weather in Paris?", 3);
  const call = page.locator('.msg.assistant').last().locator('.tool-call');
  assert.equal(await call.locator('.name').innerText(), '⚙ get_weather');
  assert.equal(await call.locator('pre').innerText(), '{\n  "city": "Paris"\n}');
  const req = stub.requests.at(-1)! as Record<string, any>;
  assert.equal(req.tools[0].function.name, 'get_weather');

  await call.locator('input.tool-result').fill('sunny, 21°C');
  await call.locator('button').click();
  await page.waitForFunction(() => document.body.dataset.state === 'idle' && document.querySelectorAll('.msg.assistant').length === 4);
  assert.equal(await page.locator('.msg.assistant').last().locator('.content').innerText(), 'It is sunny, 21°C.');
  const back = (stub.requests.at(-1)! as Record<string, any>).messages.slice(-2);
  assert.deepEqual(back[0].tool_calls, [{ id: 'call_00_x', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]);
  assert.equal(back[0].reasoning_content, 'Need a tool.', 'thinking-mode tool turns pass their reasoning back (api spec §5.4)');
  assert.deepEqual(back[1], { role: 'tool', content: 'sunny, 21°C', tool_call_id: 'call_00_x' });
  await page.fill('#setting-tools', '');
});

test('Stop ends a generation and the page stays usable', { skip: skip ?? false }, async () => {
  await page.fill('#prompt', 'count forever');
  await page.press('#prompt', 'Enter');
  await page.waitForFunction(() => (document.querySelector('.msg.assistant:last-child .content')?.textContent ?? '').includes('more'));
  await page.click('#stop');
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  assert.match(await page.locator('.msg.assistant').last().locator('.usage').innerText(), /\[stopped\]/);
  await ask('Hello after stop', 6);
});

test('conversations survive a reload and can be switched', { skip: skip ?? false }, async () => {
  await page.click('#new-chat');
  await ask('Second conversation', 1);
  await page.reload();
  await page.waitForSelector('#conversations li');
  const titles = await page.locator('#conversations li span').allInnerTexts();
  assert.deepEqual(titles, ['Second conversation', 'Hi there']);
  await page.click('#conversations li:nth-child(2)');
  assert.equal(await page.locator('#chat-title').innerText(), 'Hi there');
  assert.equal(await page.locator('.msg.assistant').count(), 6);
});

test('on a narrow screen the sidebar opens from the menu button', { skip: skip ?? false }, async () => {
  await page.setViewportSize({ width: 480, height: 800 });
  assert.equal(await page.locator('#sidebar').isVisible(), false);
  await page.click('#menu');
  assert.equal(await page.locator('#sidebar').isVisible(), true);
  await page.screenshot({ path: join(TEST_OUTPUT, 'web-chat-narrow.png') });
  await page.click('#messages', { position: { x: 440, y: 300 } }); // beside the overlay
  assert.equal(await page.locator('#sidebar').isVisible(), false);
});
