// Decode steps paired with the read probes beside them (bench/paired.ts), and the native read probe over a
// given buffer that the bench runs between steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairSteps, readProbe } from '../../bench/paired.js';
import { loadNative } from '../../src/tensor/native.js';

test('paired: each step over the mean of the probes before and after it, median of the steps', () => {
  // 1 GB per step: 0.05 s = 20 GB/s, 0.04 s = 25 GB/s, 0.1 s = 10 GB/s
  const p = pairSteps([0.05, 0.04, 0.1], [25, 25, 25, 15], 1e9);
  // ratios: 20/25 = 0.8, 25/25 = 1, 10/20 = 0.5 -> median 0.8; GB/s median 20
  assert.ok(Math.abs(p.ratio - 0.8) < 1e-12);
  assert.ok(Math.abs(p.gbs - 20) < 1e-12);
  assert.deepEqual(p.probeRange, [15, 25]);
  assert.equal(p.pairs, 3);
  // both neighbours count: 20 GB/s between probes of 30 and 20 GB/s
  assert.ok(Math.abs(pairSteps([0.05], [30, 20], 1e9).ratio - 0.8) < 1e-12);
  // a slow step next to slow probes keeps its ratio: the drift the pairing takes out
  assert.ok(Math.abs(pairSteps([0.1], [10, 10], 1e9).ratio - 1) < 1e-12);
});

test('paired: steps and probes that do not interleave are refused', () => {
  assert.throws(() => pairSteps([0.05, 0.05], [25, 25], 1e9), /2 steps need 3 probes, got 2/);
  assert.throws(() => pairSteps([], [25], 1e9), /0 steps need 1 probes/);
});

test('paired: the native probe reads a given buffer (GB/s > 0), and a tiny one gives 0 bytes', (t) => {
  const { addon } = loadNative();
  if (!addon) return t.skip('native addon unavailable');
  const g = readProbe(addon, 2, 8 << 20)();
  assert.ok(Number.isFinite(g) && g > 0, `probe ${g} GB/s`);
  assert.equal(addon.readBandwidth(new Uint8Array(64), 2, 1), 0); // under 128 bytes a thread: nothing read
  assert.ok(addon.readBandwidth(1 << 20, 1, 1) > 0); // the size form still makes its own buffer
});
