import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targetRows } from '../../bench/targets.js';
import type { BenchRow } from '../../bench/util.js';

const row = (section: string, name: string, ratio: number): BenchRow => ({ section, name, value: 1, unit: 'tok/s', ratio });

test('targets: each measured mode gets a verdict against its goal', () => {
  const t = targetRows([
    row('model bench-2g', 'decode (16 steps)', 0.57),
    row('model bench-2g', 'decode (16 steps), fast numerics', 0.71),
    row('model bench-2g', 'prefill 256 tokens', 0.3),
    row('model bench-2g', 'prefill 256 tokens, fast numerics', 0.4),
    row('context (bench-2g)', 'decode at 128K context', 0.8), // tok/s vs 1K: 1.25x the time
    row('model default', 'decode (16 steps)', 0.99), // another model: not a target
    row('model bench-2g', 'decode steps over adjacent read probes', 0.69),
    row('model bench-2g', 'decode steps over adjacent read probes, fast numerics', 0.74),
  ]);
  const by = new Map(t.map((r) => [r.name, r]));
  assert.equal(t.length, 7);
  assert.equal(by.get('decode >= 70% of adjacent read probes, exact')?.note, 'not met (from "model bench-2g / decode steps over adjacent read probes")');
  assert.ok(Math.abs(by.get('decode >= 70% of adjacent read probes, fast numerics')!.value! - 74) < 1e-9);
  assert.equal(by.get('decode >= 70% of adjacent read probes, fast numerics')?.note?.startsWith('met'), true);
  assert.equal(by.get('decode >= 70% of read BW, exact')?.note?.startsWith('not met'), true);
  assert.ok(Math.abs(by.get('decode >= 70% of read BW, exact')!.value! - 57) < 1e-9);
  assert.equal(by.get('decode >= 70% of read BW, fast numerics')?.note?.startsWith('met'), true);
  assert.equal(by.get('prefill >= 40% of fp32 peak, exact')?.note?.startsWith('not met'), true);
  assert.equal(by.get('prefill >= 40% of fp32 peak, fast numerics')?.note?.startsWith('met'), true, 'the goal itself counts as met');
  const ctx = by.get('decode at 128K <= 2x 1K, exact');
  assert.ok(Math.abs(ctx!.value! - 1.25) < 1e-9);
  assert.equal(ctx?.note?.startsWith('met'), true);
});

test('targets: a run without the rows (skipped sections, no machine limits) reports none', () => {
  assert.deepEqual(targetRows([]), []);
  const noLimits: BenchRow = { section: 'model bench-2g', name: 'decode (16 steps)', value: 14, unit: 'tok/s' };
  assert.deepEqual(targetRows([noLimits]), []);
  assert.equal(targetRows([row('context (bench-2g)', 'decode at 128K context', 0.4)])[0]?.note?.startsWith('not met'), true);
});
