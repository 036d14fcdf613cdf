// `dsv4 verify` as a user runs it: exit status, per-step lines, one-line summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../../../', import.meta.url).pathname;
const golden = join(root, 'test/fixtures/golden/tiny-b');

function verify(args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin/dsv4.js'), 'verify', ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('dsv4 verify: exit 0 and a PASS summary on a matching golden set; exit 1 on a mismatch', () => {
  const ok = verify(['--golden', golden]);
  assert.equal(ok.status, 0, ok.err);
  const lines = ok.out.trim().split('\n');
  assert.match(lines.at(-1)!, /^PASS tiny-b: 21\/21 logit rows bit-exact, top-1 21\/21, max \|Δlogit\| 0 /);
  assert.ok(lines.some((l) => /^decode\[9\] .*bit-exact$/.test(l)));

  // the same golden set without its checkpoint (--model points at it), one golden logit changed
  const dir = mkdtempSync(join(tmpdir(), 'dsv4-verify-'));
  try {
    cpSync(join(golden, 'golden.json'), join(dir, 'golden.json'));
    cpSync(join(golden, 'arrays'), join(dir, 'arrays'), { recursive: true });
    const f = join(dir, 'arrays/decode_logits.npy');
    const b = readFileSync(f);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const at = b.byteLength - 4 * 384 * 7; // row 3 of [10, 384]
    v.setFloat32(at, v.getFloat32(at, true) + 0.5, true);
    writeFileSync(f, b);
    const bad = verify(['--golden', dir, '--model', join(golden, 'checkpoint')]);
    assert.equal(bad.status, 1, bad.err);
    assert.match(bad.out, /^decode\[3\] .*DIFFERS$/m);
    assert.match(bad.out.trim().split('\n').at(-1)!, /^FAIL tiny-b: 20\/21 logit rows bit-exact/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const missing = verify(['--golden', join(root, 'test/fixtures')]);
  assert.notEqual(missing.status, 0);
  assert.match(missing.err, /not a golden directory/);
  assert.equal(missing.err.trim().split('\n').length, 1);
});
