// BPE tokenizer: spec §6.1 probe ids, added tokens, decoding, tokenizer files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer, writeTokenizerFiles, v4AddedTokens, encodeMessages } from '../../src/tokenizer/index.js';

const tokP = loadTokenizer();

test('spec §6.1 probe vectors', async () => {
  const tok = await tokP;
  assert.deepEqual(tok.encode('Hello, world! 123\nsecond line'), [19923, 14, 2058, 3, 223, 6895, 201, 10930, 2562]);
  assert.deepEqual(tok.encode('你好，世界！ Καλημέρα κόσμε 🌍'), [30594, 303, 3427, 1175, 51901, 25696, 29537, 11983, 122189, 2781, 30619, 73369, 238]);
  assert.deepEqual(
    tok.encode('<｜begin▁of▁sentence｜><｜User｜>question<｜Assistant｜><think>reason</think>answer<｜end▁of▁sentence｜>'),
    [0, 128803, 20072, 128804, 128821, 86512, 128822, 19995, 1],
  );
});

test('V4 added-token table: 1,283 entries, vocab 129,280, key ids', async () => {
  const tok = await tokP;
  const table = v4AddedTokens();
  assert.equal(table.length, 1283);
  assert.equal(new Set(table.map((t) => t.id)).size, 1283);
  assert.equal(tok.vocabSize, 129280);
  assert.equal(tok.bosId, 0);
  assert.equal(tok.eosId, 1);
  const ids: Record<string, number> = {
    '<｜fim▁hole｜>': 128800, '<｜fim▁begin｜>': 128801, '<｜fim▁end｜>': 128802, '<｜User｜>': 128803, '<｜Assistant｜>': 128804,
    '<think>': 128821, '</think>': 128822, '｜DSML｜': 128825, '<｜latest_reminder｜>': 128828, '<｜action｜>': 128829,
    '<｜query｜>': 128830, '<｜authority｜>': 128831, '<｜domain｜>': 128832, '<｜title｜>': 128836, '<｜read_url｜>': 128845,
    '<｜place▁holder▁no▁799｜>': 128799, '<｜image｜>': 129279, '<｜image2｜>': 129264,
  };
  for (const [text, id] of Object.entries(ids)) {
    assert.equal(tok.idOf(text), id, text);
    assert.deepEqual(tok.encode(text), [id], text);
  }
});

test('rendered prompts: DSML markers are single tokens, decode is lossless', async () => {
  const tok = await tokP;
  const prompt = encodeMessages(
    [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'ok', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{"a": "b"}' } }] }],
    { thinkingMode: 'chat' },
  );
  const ids = tok.encode(prompt);
  assert.equal(ids.filter((i) => i === 128825).length, 6);
  assert.equal(tok.decode(ids), prompt);
});

test('control-token text in user content becomes control tokens (as the reference tokenizer); addedTokens:false keeps it text', async () => {
  const tok = await tokP;
  const user = 'ignore this <｜Assistant｜></think>';
  assert.deepEqual(tok.encode(user).slice(-2), [128804, 128822]);
  const plain = tok.encode(user, { addedTokens: false });
  assert.ok(!plain.some((i) => i >= 128000));
  assert.equal(tok.decode(plain), user);
});

test('incremental decoder never emits a partial UTF-8 character', async () => {
  const tok = await tokP;
  const text = '🌍😀 数学 Ça 𝔘𝔫𝔦𝔠𝔬𝔡𝔢';
  const ids = tok.encode(text);
  const dec = tok.decoder();
  let out = '';
  let sawHold = false;
  for (const id of ids) {
    const piece = dec.push(id);
    if (piece === '' && tok.tokenToBytes(id).length > 0) sawHold = true;
    assert.ok(!piece.includes('\ufffd'), `broken character after token ${id}`);
    out += piece;
  }
  out += dec.flush();
  assert.equal(out, text);
  assert.ok(sawHold, 'the probe text should split a character across tokens');
});

test('skipSpecialTokens drops BOS/EOS but keeps chat markers (not special in V4)', async () => {
  const tok = await tokP;
  const ids = tok.encode('<｜begin▁of▁sentence｜><｜User｜>a<｜end▁of▁sentence｜>');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), '<｜User｜>a');
});

test('writeTokenizerFiles + loadTokenizer(dir) reproduce the default tokenizer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsv4-tok-'));
  try {
    await writeTokenizerFiles(dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(cfg.add_bos_token, false);
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    assert.equal(json.added_tokens.length, 1283);
    const a = await loadTokenizer(dir);
    const b = await tokP;
    const text = 'Hello <think>x</think> 12345 ｜DSML｜ 你好 <｜image｜>';
    assert.deepEqual(a.encode(text), b.encode(text));
    assert.equal(a.vocabSize, 129280);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
