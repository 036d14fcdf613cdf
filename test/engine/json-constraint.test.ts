import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonConstraint, JsonMachine, TokenTrie } from '../../src/engine/json-constraint.js';

function accepts(schema: unknown, text: string): { ok: boolean; done: boolean } {
  const m = new JsonMachine((schema as Record<string, unknown>) ?? null);
  for (const b of Buffer.from(text, 'utf8')) if (!m.push(b)) return { ok: false, done: false };
  return { ok: true, done: m.done };
}

test('json_object accepts objects and rejects everything else', () => {
  for (const s of ['{}', '{"a":1}', '{ "a" : [1, 2.5e-3, -0, "x\\u00e9\\n", true, null, {"b": {}}] }', '{"é😀":"ü"}']) {
    assert.deepEqual(accepts(null, s), { ok: true, done: true }, s);
  }
  for (const s of ['[]', '"x"', '1', '{"a":01}', '{"a":1,}', '{a:1}', '{"a":1}}', '{"a":tru}', '{"a":"\x01"}', '{"a":-}']) {
    const r = accepts(null, s);
    assert.ok(!(r.ok && r.done), s);
  }
  assert.deepEqual(accepts(null, '{"a": 12'), { ok: true, done: false });
});

test('json_schema: properties, required, types, enum, arrays', () => {
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      age: { type: 'integer' },
      score: { type: 'number' },
      tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 2 },
      ok: { type: 'boolean' },
      nick: { type: ['string', 'null'] },
    },
    required: ['name', 'age'],
  };
  assert.equal(accepts(schema, '{"name":"x","age":3}').done, true);
  assert.equal(accepts(schema, '{"age":3,"name":"x","score":1.5,"tags":["a","b"],"ok":false,"nick":null}').done, true);
  assert.equal(accepts(schema, '{"name":"x"}').ok && accepts(schema, '{"name":"x"}').done, false);
  assert.equal(accepts(schema, '{"name":"x","age":3.5}').ok, false);
  assert.equal(accepts(schema, '{"name":3').ok, false);
  assert.equal(accepts(schema, '{"other":1').ok, false);
  assert.equal(accepts(schema, '{"name":"x","name"').ok, false);
  assert.equal(accepts(schema, '{"name":"x","age":1,"tags":["c"').ok, false);
  assert.equal(accepts(schema, '{"name":"x","age":1,"tags":["a","a","b"').ok, false);
  assert.equal(accepts(schema, '{"name":"x","age":1,"nick":1').ok, false);
  assert.equal(accepts(schema, '{"name":"x","age":1} ').ok, false);
});

test('allowedTokens only keeps tokens that continue a valid document; EOS once complete', () => {
  const vocab = ['{', '}', '"', 'a', '":', ' 1', '1}', 'x', '{"', 'tr', 'ue', '<eos>', ',', '"a"'];
  const bytes = vocab.map((s, i) => (i === 11 ? null : Buffer.from(s)));
  const c = new JsonConstraint(new TokenTrie(bytes), bytes, 11, { type: 'object', properties: { a: { type: 'integer' } } });
  const names = (ids: Int32Array) => Array.from(ids, (i) => vocab[i]);
  assert.deepEqual(names(c.allowedTokens().sort()), ['{', '{"']);
  c.accept(8);
  assert.deepEqual(names(c.allowedTokens().sort()), ['a', '":'].filter((t) => t === 'a'));
  c.accept(3);
  assert.deepEqual(names(c.allowedTokens().sort()), ['"', '":']);
  c.accept(4);
  assert.deepEqual(names(c.allowedTokens().sort()), [' 1', '1}']);
  c.accept(6);
  assert.equal(c.complete, true);
  assert.deepEqual(names(c.allowedTokens().sort()), ['<eos>']);
});
