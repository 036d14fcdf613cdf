// Claude Code 2.1.x compatibility: `system`-role entries inside Anthropic `messages` fold into the system
// prompt (a strict server keeps DeepSeek's 400), and HEAD probes of the base URLs answer 200.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import type { ServingModel } from '../../src/server/index.js';
import { TEST_KEY, startTestServer } from './harness.js';

let server: ServingModel;
let client: Anthropic;

before(async () => {
  server = await startTestServer();
  client = new Anthropic({ baseURL: `${server.url}/anthropic`, apiKey: TEST_KEY, maxRetries: 0 });
});
after(async () => server?.shutdown());

const inline = [
  { role: 'user', content: 'Hello' },
  { role: 'system', content: [{ type: 'text', text: 'Reminder: be brief.' }] },
  { role: 'user', content: 'Again' },
];
const folded = [
  { role: 'user', content: 'Hello' },
  { role: 'user', content: 'Again' },
];

describe('Claude Code compatibility', () => {
  it('folds system messages inside messages into the system prompt (same prompt as sent top-level)', async () => {
    const a = await client.messages.countTokens({ model: 'claude-sonnet-4-6', system: 'Top.', messages: inline } as never);
    const b = await client.messages.countTokens({ model: 'claude-sonnet-4-6', system: 'Top.\nReminder: be brief.', messages: folded } as never);
    assert.equal(a.input_tokens, b.input_tokens);
    const c = await client.messages.countTokens({ model: 'claude-sonnet-4-6', system: 'Top.', messages: folded } as never);
    assert.ok(c.input_tokens < a.input_tokens);
    const m = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 2, messages: inline } as never);
    assert.equal(m.type, 'message');
    assert.equal(m.usage.output_tokens, 2);
  });

  it('keeps the 400 with strictAnthropic', async () => {
    server.deps.cfg.strictAnthropic = true;
    try {
      await assert.rejects(
        client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 2, messages: inline } as never),
        (e: unknown) => e instanceof Anthropic.APIError && e.status === 400 && e.message.includes("unknown variant `system`"),
      );
    } finally {
      server.deps.cfg.strictAnthropic = false;
    }
  });

  it('answers HEAD on the base URLs with 200 and an empty body, unknown paths with 404', async () => {
    for (const path of ['/anthropic', '/', '/anthropic/v1/messages', '/v1', '/models']) {
      const res = await fetch(`${server.url}${path}`, { method: 'HEAD' });
      assert.equal(res.status, 200, path);
      assert.equal(await res.text(), '');
    }
    assert.equal((await fetch(`${server.url}/nope`, { method: 'HEAD' })).status, 404);
  });
});
