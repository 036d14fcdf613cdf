// ensureDefaultModel's cache rules (with a stand-in writer, so they run in milliseconds) and the
// real `default` preset written once (the same directory the server tests use).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { COMPLETE_MARKER, defaultModelDir, dsv4Home, ensureDefaultModel } from '../../src/cli/default-model.js';
import { openCheckpoint } from '../../src/checkpoint/index.js';
import { loadTokenizer } from '../../src/tokenizer/index.js';

const root = mkdtempSync(join(tmpdir(), 'dsv4-default-'));

test('the cache directory follows DSV4_HOME, then XDG_CACHE_HOME, then ~/.cache', () => {
  assert.equal(dsv4Home({ DSV4_HOME: '/x/home' }), '/x/home');
  assert.equal(dsv4Home({ XDG_CACHE_HOME: '/xdg' }), '/xdg/dsv4');
  assert.match(dsv4Home({}), /\/\.cache\/dsv4$/);
  assert.equal(defaultModelDir({ DSV4_HOME: '/h' }), '/h/default-model-v1');
});

test('generated once, reused after, and redone when incomplete', async () => {
  const dir = join(root, 'a', 'default-model-v1');
  let calls = 0;
  const generate = async (out: string, progress: (d: number, t: number) => void) => {
    calls++;
    progress(1, 2);
    writeFileSync(join(out, 'config.json'), '{}');
  };
  assert.equal(await ensureDefaultModel({ dir, generate, progress: false }), dir);
  assert.equal(await ensureDefaultModel({ dir, generate, progress: false }), dir);
  assert.equal(calls, 1);
  assert.ok(existsSync(join(dir, COMPLETE_MARKER)));

  // A directory without the marker (an interrupted run) is replaced.
  const half = join(root, 'b', 'default-model-v1');
  mkdirSync(half, { recursive: true });
  writeFileSync(join(half, 'junk.safetensors'), 'x');
  await ensureDefaultModel({ dir: half, generate, progress: false });
  assert.equal(calls, 2);
  assert.deepEqual(readdirSync(half).sort(), [COMPLETE_MARKER, 'config.json']);
});

test('a failing writer leaves nothing behind and reports one line', async () => {
  const dir = join(root, 'c', 'default-model-v1');
  await assert.rejects(
    ensureDefaultModel({ dir, generate: async () => Promise.reject(new Error('disk full\nmore detail')), progress: false }),
    (err: Error & { exitCode?: number }) => err.message === `cannot generate the default model in ${dir}: disk full` && err.exitCode === 4,
  );
  assert.equal(existsSync(dir), false);
  assert.deepEqual(readdirSync(join(root, 'c')), [], 'no temporary directory is left');
});

test('the real default model is a valid official-layout checkpoint with the V4 tokenizer', async () => {
  const dir = await ensureDefaultModel({ dir: join(tmpdir(), 'dsv4-test-default-model'), progress: false });
  const ckpt = openCheckpoint(dir);
  try {
    assert.equal(ckpt.args.vocabSize, 129280);
    assert.ok(ckpt.names().length > 100);
  } finally {
    ckpt.close();
  }
  assert.ok(existsSync(join(dir, 'tokenizer.json')));
  const tok = await loadTokenizer(dir);
  assert.equal(tok.vocabSize, 129280);
  assert.equal(tok.decode(tok.encode('Hello, world')), 'Hello, world');
});
