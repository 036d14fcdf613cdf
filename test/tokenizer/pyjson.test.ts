// Python json.dumps / json.loads / float repr emulation (the encoder's byte-exactness rests on it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dumps, floatRepr, loads, pyStr, PyFloat } from '../../src/tokenizer/pyjson.js';

test('float repr matches Python', () => {
  const cases: [number, string][] = [
    [1000, '1000.0'], [0.5, '0.5'], [1e16, '1e+16'], [1e15, '1000000000000000.0'], [1e-5, '1e-05'], [0.0001, '0.0001'],
    [1.5e300, '1.5e+300'], [-0.0, '-0.0'], [0.1 + 0.2, '0.30000000000000004'], [123456789.125, '123456789.125'], [5e-324, '5e-324'],
    [-2.5e-7, '-2.5e-07'], [1.7976931348623157e308, '1.7976931348623157e+308'],
  ];
  for (const [x, s] of cases) assert.equal(floatRepr(x), s, String(x));
});

test('loads keeps floats, big ints and key order; dumps uses Python separators and escapes', () => {
  const v = loads('{"b": 1, "a": [3.0, 1e3, 12345678901234567890, -0, NaN, -Infinity], "2": null, "1": "x\\u00e9\\n\\u0001\\ud83d\\ude00"}');
  assert.equal(dumps(v), '{"b": 1, "a": [3.0, 1000.0, 12345678901234567890, 0, NaN, -Infinity], "2": null, "1": "xé\\n\\u0001😀"}');
  assert.equal(dumps({ k: '\u007f"\\\t' }), '{"k": "\u007f\\"\\\\\\t"}');
  assert.equal(dumps(new PyFloat(2)), '2.0');
});

test('loads rejects what Python rejects', () => {
  for (const bad of ['', '01', '1.', '{"a":1,}', '"\u0001"', '[1] x', "{'a': 1}", 'nan']) assert.throws(() => loads(bad), /JSONDecodeError|Expecting|Extra|Invalid|Unterminated/, bad);
  assert.deepEqual(loads(' [true, false, null] '), [true, false, null]);
});

test('str() of containers is Python repr', () => {
  assert.equal(pyStr(loads('{"a": [1, "it\'s", null, true, 2.5]}')), `{'a': [1, "it's", None, True, 2.5]}`);
});
