import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { modelArgsFromHfConfig, openCheckpoint } from '../../src/checkpoint/index.js';
import { summarizeInventory, tensorInventory } from '../../src/checkpoint/inventory.js';
import { hfConfigFromArgs, presetArgs, PRESET_NAMES } from '../../src/checkpoint/presets.js';
import { budgetPlan, sequenceStateSize } from '../../src/checkpoint/info.js';
import { FIXTURES, readJson } from './helpers.js';

const flash = () => modelArgsFromHfConfig(readJson(join(FIXTURES, 'flash.config.json')));
const pro = () => modelArgsFromHfConfig(readJson(join(FIXTURES, 'pro.config.json')));

test('inventory of the real Flash config.json: 69,187 tensors / 159,609,485,896 bytes (spec §1.5)', () => {
  const s = summarizeInventory(flash());
  assert.equal(s.tensors, 69187);
  assert.equal(s.bytes, 159609485896);
});

test('inventory of the real Pro config.json: 145,116 tensors / 864,704,792,696 bytes (spec §1.5)', () => {
  const s = summarizeInventory(pro());
  assert.equal(s.tensors, 145116);
  assert.equal(s.bytes, 864704792696);
});

test('inventory entries follow spec §5.1 shapes (Flash samples)', () => {
  const inv = new Map(tensorInventory(flash()).map((t) => [t.name, t]));
  const check = (name: string, dtype: string, shape: number[]) => {
    const t = inv.get(name);
    assert.ok(t, name);
    assert.equal(t.dtype, dtype, name);
    assert.deepEqual(t.shape, shape, name);
  };
  check('layers.0.hc_attn_fn', 'F32', [24, 16384]);
  check('layers.5.attn.wq_b.scale', 'F8_E8M0', [256, 8]);
  check('layers.5.attn.wo_a.weight', 'F8_E4M3', [8192, 4096]);
  check('layers.2.attn.compressor.ape', 'F32', [4, 1024]);
  check('layers.3.attn.compressor.ape', 'F32', [128, 512]);
  check('layers.2.attn.indexer.compressor.wkv.weight', 'BF16', [256, 4096]);
  check('layers.2.ffn.gate.tid2eid', 'I64', [129280, 6]);
  check('layers.3.ffn.gate.bias', 'F32', [256]);
  check('layers.7.ffn.experts.255.w1.weight', 'I8', [2048, 2048]);
  check('layers.7.ffn.experts.255.w2.scale', 'F8_E8M0', [4096, 64]);
  check('mtp.0.e_proj.scale', 'F8_E8M0', [32, 32]);
  check('mtp.0.ffn.gate.bias', 'F32', [256]);
  assert.ok(!inv.has('layers.3.attn.indexer.wq_b.weight'), 'no indexer on HCA layers');
  assert.ok(!inv.has('layers.0.attn.compressor.ape'), 'no compressor on window layers');
  assert.ok(!inv.has('layers.3.ffn.gate.tid2eid'));
});

test('the golden tiny-a / tiny-b checkpoints (written by the official layout) validate: same names, dtypes, shapes', () => {
  for (const g of ['tiny-a', 'tiny-b']) {
    const dir = join(process.cwd(), 'test/fixtures/golden', g, 'checkpoint');
    const c = openCheckpoint(dir); // throws on any difference from the inventory
    assert.equal(c.names().length, tensorInventory(c.args).length);
    // And their inference/config.json form maps to the same ModelArgs.
    assert.deepEqual(modelArgsFromHfConfig(readJson(join(dir, '..', 'inference_config.json'))), c.args);
    c.close();
  }
});

test('parameters and sequence state (Flash, Pro) match the published / spec §4.1 figures', () => {
  const f = summarizeInventory(flash());
  assert.equal(Math.round((f.params - f.mtpParams) / 1e9), 284); // "284B" total
  const p = summarizeInventory(pro());
  assert.equal(Math.round(p.params / 1e11) / 10, 1.6); // "1.6T"
  assert.equal(sequenceStateSize(flash(), 0).perToken, 6880);
  assert.equal(sequenceStateSize(pro(), 0).perToken, 9848);
  assert.equal(sequenceStateSize(flash(), 0).windows, 5.5 * 2 ** 20);
  assert.equal(sequenceStateSize(pro(), 0).windows, 7.75 * 2 ** 20);
});

test('presets: HF config round trip and the published shapes', () => {
  for (const name of PRESET_NAMES) {
    const a = presetArgs(name);
    assert.deepEqual(modelArgsFromHfConfig(hfConfigFromArgs(a)), a, name);
  }
  assert.deepEqual(presetArgs('flash'), flash());
  assert.deepEqual(presetArgs('pro'), pro());
  const big = summarizeInventory(presetArgs('bench-2g'));
  assert.ok(big.bytes >= 2 * 2 ** 30, `bench-2g is ${big.bytes} bytes`);
  const def = summarizeInventory(presetArgs('default'));
  assert.ok(def.bytes < 120e6, `default is ${def.bytes} bytes`);
  assert.equal(presetArgs('default').vocabSize, 129280);
  const resized = presetArgs('flash', { layers: 6, dim: 512, experts: 16 });
  assert.deepEqual(resized.compressRatios, [0, 0, 4, 128, 4, 128, 0]);
  assert.equal(resized.nRoutedExperts, 16);
});

test('memory budget plan (Flash, 16 GiB): experts cached, resident dense bytes', () => {
  const a = flash();
  const s = summarizeInventory(a);
  const p = budgetPlan(a, s, 16 * 2 ** 30);
  assert.equal(s.expertBytes, 13369344); // w1+w2+w3 with scales: 2 x (2048x2048 + 2048x128) + 4096x1024 + 4096x64
  assert.equal(p.totalExperts, 44 * 256);
  assert.equal(p.cachedExperts, Math.floor((16 * 2 ** 30) / 13369344));
  assert.equal(p.residentBytes, s.bytes - 44 * 256 * 13369344);
  assert.equal(p.weightsMemory, p.residentBytes + 16 * 2 ** 30);
});
