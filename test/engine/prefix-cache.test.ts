import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrefixCache } from '../../src/engine/prefix-cache.js';
import { loadModel } from '../../src/model/index.js';
import { tinyModel } from './fixture.js';

const model = await loadModel((await tinyModel()).dir);
const toks = (n: number, off = 0) => Int32Array.from({ length: n }, (_, i) => 3 + ((i * 5 + off) % 50));

function advanced(tokens: Int32Array) {
  const st = model.newState();
  const logits = model.forward([{ state: st, tokens }])[0]!;
  return { st, logits };
}

test('longest matching prefix wins; the hit is a private copy', () => {
  const c = new PrefixCache({ memoryBytes: 1 << 28, modelId: 'm', restore: (b) => model.restoreState(b) });
  const p = toks(40);
  for (const n of [10, 25]) {
    const { st, logits } = advanced(p.subarray(0, n));
    c.insert(p.slice(0, n), st, logits);
  }
  assert.equal(c.lookup(toks(40, 1)), null);
  const hit = c.lookup(p)!;
  assert.equal(hit.length, 25);
  model.forward([{ state: hit.state, tokens: p.subarray(25) }]);
  const again = c.lookup(p)!;
  assert.equal(again.state.position, 25);
  assert.equal(c.lookup(p.subarray(0, 20))!.length, 10);
});

test('LRU eviction keeps memory under budget', () => {
  const one = advanced(toks(10));
  const entryBytes = one.st.byteSize() + one.logits.byteLength + 40;
  const c = new PrefixCache({ memoryBytes: entryBytes * 2 + 10, modelId: 'm', restore: (b) => model.restoreState(b) });
  const keys = [0, 1, 2].map((o) => toks(10, o));
  c.insert(keys[0]!, advanced(keys[0]!).st, advanced(keys[0]!).logits);
  c.insert(keys[1]!, advanced(keys[1]!).st, advanced(keys[1]!).logits);
  assert.ok(c.lookup(keys[0]!)); // key 0 is now the most recently used
  c.insert(keys[2]!, advanced(keys[2]!).st, advanced(keys[2]!).logits);
  assert.ok(c.memoryBytes <= entryBytes * 2 + 10);
  assert.ok(c.lookup(keys[0]!));
  assert.equal(c.lookup(keys[1]!), null);
  assert.ok(c.lookup(keys[2]!));
});

test('disk snapshots survive a restart; corrupt and foreign files are never served', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsv4-pc-'));
  try {
    const mk = (id = 'm') => new PrefixCache({ memoryBytes: 1 << 28, dir, modelId: id, restore: (b) => model.restoreState(b) });
    const c1 = mk();
    const a = toks(30);
    const b = toks(30, 7);
    for (const k of [a, b]) {
      const { st, logits } = advanced(k);
      c1.insert(k, st, logits);
    }
    const files = readdirSync(dir).filter((f) => f.endsWith('.snap'));
    assert.equal(files.length, 2);
    const c2 = mk();
    const hit = c2.lookup(Int32Array.from([...a, 1, 2]))!;
    assert.equal(hit.source, 'disk');
    assert.equal(hit.length, 30);
    assert.deepEqual(hit.logits, advanced(a).logits);
    const scratch = advanced(a).st; // same chunking from scratch (chunking itself is covered in cache-real)
    assert.deepEqual(model.forward([{ state: hit.state, tokens: Int32Array.of(1, 2) }])[0], model.forward([{ state: scratch, tokens: Int32Array.of(1, 2) }])[0]);
    // flip one byte in each payload: rejected at load, never served
    for (const f of files.map((x) => join(dir, x))) {
      const buf = readFileSync(f);
      buf[buf.length - 3] ^= 0xff;
      writeFileSync(f, buf);
    }
    const c3 = mk();
    assert.equal(c3.lookup(b), null);
    assert.equal(c3.lookup(a), null);
    assert.ok(c3.counters.rejectedFiles >= 2);
    // another model's cache in the same directory: invisible
    const c4 = mk('other');
    const { st, logits } = advanced(a);
    c4.insert(a, st, logits);
    assert.equal(mk().lookup(a), null);
    assert.ok(mk('other').lookup(a));
    // a torn write (temp file) is cleaned up and ignored
    writeFileSync(join(dir, readdirSync(dir).find((f) => f.endsWith('.snap'))! + '.123.tmp'), 'partial');
    mk('other');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
