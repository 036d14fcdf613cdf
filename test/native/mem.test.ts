// Huge-page advice for weight buffers (native/mem.cc, tensor/native.ts adviseHugePages): the 2 MiB-aligned
// interior of large buffers only, bytes never changed, small buffers and DSV4_HUGE_PAGES=0 left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { adviseHugePages, loadNative } from '../../src/tensor/native.js';

const { addon, reason } = loadNative();
const skip = addon ? (addon.adviseHuge ? false : 'addon built without mem.cc') : `native addon unavailable: ${reason}`;
const HUGE = 2 << 20;

test('adviseHugePages: the aligned 2 MiB pages inside a large buffer, bytes unchanged', { skip }, () => {
  for (const len of [(8 << 20) + 12345, 5 << 20, 64 << 20]) {
    const b = new Uint8Array(Buffer.allocUnsafeSlow(len).buffer, 0, len);
    for (let i = 0; i < len; i += 4093) b[i] = (i * 7) & 255;
    const n = adviseHugePages(b);
    assert.equal(n % HUGE, 0, `${len}: ${n} not whole 2 MiB pages`);
    assert.ok(n <= len && n >= len - 2 * HUGE, `${len}: ${n} bytes advised`);
    if (process.platform === 'linux' && existsSync('/sys/kernel/mm/transparent_hugepage/enabled')) assert.ok(n > 0, `${len}: nothing advised`);
    for (let i = 0; i < len; i += 4093) assert.equal(b[i], (i * 7) & 255, `byte ${i}`);
  }
});

test('adviseHugePages: small buffers and DSV4_HUGE_PAGES=0 are left alone', { skip }, () => {
  assert.equal(adviseHugePages(new Uint8Array(3 << 20)), 0);
  const saved = process.env.DSV4_HUGE_PAGES;
  process.env.DSV4_HUGE_PAGES = '0';
  try {
    assert.equal(adviseHugePages(new Uint8Array(16 << 20)), 0);
  } finally {
    if (saved === undefined) delete process.env.DSV4_HUGE_PAGES;
    else process.env.DSV4_HUGE_PAGES = saved;
  }
});
