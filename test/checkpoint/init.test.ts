import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { openCheckpoint } from '../../src/checkpoint/index.js';
import { initCheckpoint } from '../../src/checkpoint/init.js';
import { ExpertCache } from '../../src/checkpoint/expert-cache.js';
import { tensorInventory } from '../../src/checkpoint/inventory.js';
import { E2M1_VALUES, E4M3_VALUES } from '../../src/tensor/formats.js';
import { FIXTURES, makeScratch, readJson, type Scratch } from './helpers.js';

let s: Scratch;
before(async () => {
  s = await makeScratch();
});
after(() => s.cleanup());

function digest(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex');
}

const dsv4 = (...args: string[]) => spawnSync(process.execPath, ['bin/dsv4.js', ...args], { encoding: 'utf8' });

test('init writes the official layout: inventory names/dtypes/shapes, sorted index, shards, configs', () => {
  const c = openCheckpoint(s.tiny); // validates against the inventory
  const inv = tensorInventory(c.args);
  assert.equal(c.names().length, inv.length);
  const idx = readJson(join(s.tiny, 'model.safetensors.index.json'));
  const names = Object.keys(idx.weight_map);
  assert.deepEqual(names, [...names].sort());
  assert.equal(idx.metadata.total_size, c.totalBytes());
  assert.deepEqual(c.shardFiles().sort(), ['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors']);
  assert.equal(c.generationConfig.do_sample, true);
  assert.equal(readJson(join(s.tiny, 'config.json')).model_type, 'deepseek_v4');
  c.close();
});

test('init is deterministic per seed and differs across seeds', async () => {
  const again = join(s.root, 'again');
  await initCheckpoint({ preset: 'tiny', out: again, seed: 7 });
  assert.equal(digest(again), digest(s.tiny));
  const other = join(s.root, 'other');
  await initCheckpoint({ preset: 'tiny', out: other, seed: 8 });
  const a = openCheckpoint(s.tiny);
  const b = openCheckpoint(other);
  assert.notDeepEqual(a.tensor('layers.1.attn.wq_a.weight').bytes, b.tensor('layers.1.attn.wq_a.weight').bytes);
  a.close();
  b.close();
});

test('synthetic weights are finite with sensible magnitudes', () => {
  const c = openCheckpoint(s.tiny);
  const a = c.args;
  for (const name of c.names()) {
    const t = c.tensor(name);
    if (t.dtype === 'F8_E4M3') {
      for (const v of t.bytes) assert.ok((v & 0x7f) !== 0x7f, `${name}: NaN code`);
    } else if (t.dtype === 'F8_E8M0') {
      for (const v of t.bytes) assert.ok(v > 100 && v < 127, `${name}: scale 2^${v - 127}`);
    } else if (t.dtype === 'F32') {
      const f = new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.length / 4);
      for (const v of f) assert.ok(Number.isFinite(v) && Math.abs(v) < 10, `${name}: ${v}`);
    } else if (t.dtype === 'I64') {
      const ids = new BigInt64Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.length / 8);
      const k = t.shape[1]!;
      for (let r = 0; r < t.shape[0]!; r++) {
        const row = new Set([...ids.subarray(r * k, r * k + k)].map(Number));
        assert.equal(row.size, k, `${name}: row ${r} repeats an expert`);
        for (const e of row) assert.ok(e >= 0 && e < a.nRoutedExperts);
      }
    }
  }
  // Dequantized FP8 / FP4 linears have std ~ 1/sqrt(in) (within the ±1 exponent spread of block scales).
  const fp8 = c.tensor('layers.2.attn.wq_b.weight');
  const sc = c.tensor('layers.2.attn.wq_b.scale').bytes;
  let ss = 0;
  const [out, inF] = fp8.shape as [number, number];
  for (let r = 0; r < out; r++) for (let k = 0; k < inF; k++) ss += (E4M3_VALUES[fp8.bytes[r * inF + k]!]! * 2 ** (sc[Math.floor(r / 128) * Math.ceil(inF / 128) + Math.floor(k / 128)]! - 127)) ** 2;
  const std8 = Math.sqrt(ss / (out * inF)) * Math.sqrt(inF);
  assert.ok(std8 > 0.4 && std8 < 2.5, `fp8 std*sqrt(in) = ${std8}`);
  const fp4 = c.tensor('layers.2.ffn.experts.5.w2.weight');
  const sc4 = c.tensor('layers.2.ffn.experts.5.w2.scale').bytes;
  const in4 = fp4.shape[1]! * 2;
  ss = 0;
  for (let i = 0; i < fp4.shape[0]! * in4; i++) {
    const code = (fp4.bytes[i >> 1]! >> ((i & 1) * 4)) & 15;
    ss += (E2M1_VALUES[code]! * 2 ** (sc4[Math.floor(i / 32)]! - 127)) ** 2;
  }
  const std4 = Math.sqrt(ss / (fp4.shape[0]! * in4)) * Math.sqrt(in4);
  assert.ok(std4 > 0.6 && std4 < 1.6, `fp4 std*sqrt(in) = ${std4}`);
  c.close();
});

test('dsv4 info on a directory holding only the real Flash / Pro config.json prints the published figures', () => {
  for (const [name, tensors, bytes] of [['flash', '69,187', '159,609,485,896'], ['pro', '145,116', '864,704,792,696']] as const) {
    const d = join(s.root, `${name}-config`);
    mkdirSync(d);
    copyFileSync(join(FIXTURES, `${name}.config.json`), join(d, 'config.json'));
    const r = dsv4('info', d, '--memory-budget', '16G', '--context', '65536');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`tensors +${tensors} expected`));
    assert.match(r.stdout, new RegExp(`bytes +${bytes} B`));
    assert.match(r.stdout, /memory budget 16\.00 GiB/);
    const j = JSON.parse(dsv4('info', d, '--json').stdout);
    assert.equal(j.inventory.tensors, Number(tensors.replace(/,/g, '')));
    assert.equal(j.inventory.bytes, Number(bytes.replace(/,/g, '')));
  }
});

test('dsv4 init --config-only (flash) writes config + index that info reads; errors are one line with exit codes', () => {
  const d = join(s.root, 'flash-cfg');
  const r = dsv4('init', '--preset', 'flash', '--out', d, '--config-only');
  assert.equal(r.status, 0, r.stderr);
  const idx = readJson(join(d, 'model.safetensors.index.json'));
  assert.equal(Object.keys(idx.weight_map).length, 69187);
  assert.equal(idx.metadata.total_size, 159609485896);
  assert.match(dsv4('info', d).stdout, /69,187/);

  const again = dsv4('init', '--preset', 'flash', '--out', d, '--config-only');
  assert.equal(again.status, 4);
  assert.match(again.stderr, /^dsv4: .*already holds a checkpoint.*\n$/);
  const bad = dsv4('init', '--preset', 'huge', '--out', join(s.root, 'x'));
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const missing = dsv4('info', join(s.root, 'nowhere'));
  assert.equal(missing.status, 4);
  assert.match(missing.stderr, /^dsv4: .*nowhere: missing config\.json\n$/);
});

test('dsv4 init with overrides, then info reads the result', () => {
  const d = join(s.root, 'resized');
  const r = dsv4('init', '--preset', 'tiny', '--out', d, '--layers', '3', '--experts', '4', '--top-k', '2', '--seed', '5');
  assert.equal(r.status, 0, r.stderr);
  const c = openCheckpoint(d);
  assert.equal(c.args.nLayers, 3);
  assert.equal(c.args.nRoutedExperts, 4);
  assert.deepEqual(c.args.compressRatios, [0, 4, 16, 0]);
  c.close();
  const info = dsv4('info', d);
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /on disk \d+ in \d+ file/);
});

test('a sparse all-zero Flash layout (46-shard scale, no disk) opens, validates, and serves a Flash-shaped expert', async () => {
  const d = join(s.root, 'flash-sparse');
  const r = await initCheckpoint({ preset: 'flash', out: d, sparse: true });
  assert.equal(r.tensors, 69187);
  assert.equal(r.bytes, 159609485896);
  const c = openCheckpoint(d);
  assert.equal(c.totalBytes(), 159609485896);
  const cache = new ExpertCache(c, { budgetBytes: 64 << 20 });
  const e = cache.get(42, 255);
  assert.equal(e.w1.kind, 'fp4');
  assert.equal(e.w1.out, 2048);
  assert.equal(e.w1.inF, 4096);
  assert.equal(e.w2.out, 4096);
  assert.equal(cache.stats().bytesRead, 13369344);
  c.close();
});

test('init --dtype bf16 / --expert-dtype fp8 layouts validate and load through the expert cache', async () => {
  const d = join(s.root, 'bf16-fp8');
  await initCheckpoint({ preset: 'tiny', out: d, seed: 1, overrides: { dtype: 'bf16', expertDtype: 'fp8' } });
  const c = openCheckpoint(d);
  assert.equal(c.args.dtype, 'bf16');
  assert.equal(c.args.expertDtype, 'fp8');
  assert.equal(c.info('layers.0.attn.wq_a.weight').dtype, 'BF16');
  assert.ok(!c.has('layers.0.attn.wq_a.scale'));
  const e = new ExpertCache(c).get(1, 0);
  assert.equal(e.w1.kind, 'fp8');
  if (e.w1.kind === 'fp8') assert.deepEqual(e.w1.scale, c.tensor('layers.1.ffn.experts.0.w1.scale').bytes);
  c.close();
});
