// measureMachine (bench/machine.ts): the all-threads FMA peak is probed again while it stays far below
// threads x one thread's (another process held a core), and the row says so. The probes are scripted
// here: a busy core cannot be produced on demand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureMachine } from '../../bench/machine.js';
import type { NativeAddon } from '../../src/tensor/native.js';
import type { BenchRow } from '../../bench/util.js';

function probes(peaks2: number[]): { addon: NativeAddon; calls: () => number } {
  let n = 0;
  const addon = {
    info: () => ({ isa: 'test', threads: 2 }),
    readBandwidth: (_b: number, t: number) => 10 * t,
    fmaPeak: (t: number) => (t === 1 ? 100 : (n++, peaks2.shift() ?? 100)),
  } as unknown as NativeAddon;
  return { addon, calls: () => n };
}

test('machine: a 2-thread peak near 2x one thread is taken at once', () => {
  const { addon, calls } = probes([190, 195, 198]);
  const rows: BenchRow[] = [];
  const lim = measureMachine(addon, rows, 0);
  assert.equal(lim.peakGflops[2], 198);
  assert.equal(calls(), 3);
  assert.equal(rows.find((r) => r.name === 'fp32 FMA peak, 2 threads')?.note, undefined);
});

test('machine: a 2-thread peak held to one core is probed again until it scales', () => {
  const { addon, calls } = probes([101, 103, 102, 104, 100, 99, 197, 120, 100]);
  const rows: BenchRow[] = [];
  const lim = measureMachine(addon, rows, 0);
  assert.equal(lim.peakGflops[2], 197);
  assert.equal(calls(), 9);
  assert.match(rows.find((r) => r.name === 'fp32 FMA peak, 2 threads')?.note ?? '', /probed 3 times: a core was busy elsewhere$/);
});

test('machine: a core busy throughout: the probe gives up and the note warns', () => {
  const { addon, calls } = probes(new Array(40).fill(101));
  const rows: BenchRow[] = [];
  const lim = measureMachine(addon, rows, 0);
  assert.equal(lim.peakGflops[2], 101);
  assert.equal(calls(), 33);
  assert.match(rows.find((r) => r.name === 'fp32 FMA peak, 2 threads')?.note ?? '', /throughout/);
});
