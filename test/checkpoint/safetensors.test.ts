import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, encodeHeader, modelArgsFromHfConfig, openCheckpoint, SafetensorsFile } from '../../src/checkpoint/index.js';
import type { DType } from '../../src/checkpoint/index.js';

const GOLDEN_A = join(process.cwd(), 'test/fixtures/golden/tiny-a');

function writeFile(path: string, tensors: { name: string; dtype: DType; shape: number[]; bytes: Uint8Array }[]): void {
  const { header } = encodeHeader(tensors);
  writeFileSync(path, Buffer.concat([header, ...tensors.map((t) => Buffer.from(t.bytes))]));
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 255;
  return b;
}

test('safetensors round trip: every dtype, exact byte ranges, aligned views', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsv4-st-'));
  try {
    const ts = [
      { name: 'a', dtype: 'F32' as DType, shape: [3, 2], bytes: bytes(24, 1) },
      { name: 'b', dtype: 'BF16' as DType, shape: [5], bytes: bytes(10, 2) },
      { name: 'c', dtype: 'F8_E4M3' as DType, shape: [3, 3], bytes: bytes(9, 3) },
      { name: 'd', dtype: 'F8_E8M0' as DType, shape: [1, 1], bytes: bytes(1, 4) },
      { name: 'e', dtype: 'I8' as DType, shape: [2, 2], bytes: bytes(4, 5) },
      { name: 'f', dtype: 'I64' as DType, shape: [2], bytes: bytes(16, 6) },
      { name: 'g', dtype: 'I32' as DType, shape: [1], bytes: bytes(4, 7) },
      { name: 'h', dtype: 'U8' as DType, shape: [0], bytes: bytes(0, 8) },
      { name: 'i', dtype: 'F16' as DType, shape: [1], bytes: bytes(2, 9) },
    ];
    const p = join(dir, 'x.safetensors');
    writeFile(p, ts);
    // Data start is 8-byte aligned.
    assert.equal(Number(readFileSync(p).readBigUInt64LE(0)) % 8, 0);
    const f = SafetensorsFile.open(p);
    assert.deepEqual([...f.entries.keys()], ts.map((t) => t.name));
    for (const t of ts) {
      const r = f.read(t.name);
      assert.equal(r.dtype, t.dtype);
      assert.deepEqual(r.shape, t.shape);
      assert.deepEqual(r.bytes, t.bytes);
      assert.equal(r.bytes.byteOffset, 0);
    }
    assert.throws(() => f.read('zzz'), CheckpointError);
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config mapping: HF config.json and inference/config.json give the same ModelArgs (tiny-a)', () => {
  const hf = JSON.parse(readFileSync(join(GOLDEN_A, 'checkpoint/config.json'), 'utf8'));
  const inf = JSON.parse(readFileSync(join(GOLDEN_A, 'inference_config.json'), 'utf8'));
  const a = modelArgsFromHfConfig(hf);
  assert.deepEqual(modelArgsFromHfConfig(inf), a);
  assert.equal(a.dim, 128);
  assert.equal(a.windowSize, 64);
  assert.equal(a.originalSeqLen, 65536);
  assert.equal(a.ropeFactor, 16);
  assert.equal(a.dtype, 'fp8');
  assert.equal(a.expertDtype, 'fp4');
  assert.equal(a.scaleFmt, 'ue8m0');
  assert.equal(a.nMtpLayers, 1);
  assert.equal(a.maxSeqLen, 4096);
  assert.equal(a.hcEps, 1e-6);
  assert.deepEqual(a.compressRatios, [0, 0, 4, 128, 4, 0]);
  assert.equal(modelArgsFromHfConfig(hf, { maxSeqLen: 1 << 16 }).maxSeqLen, 65536);
});

test('config mapping: defaults where silent, errors on inconsistency', () => {
  const hf = JSON.parse(readFileSync(join(GOLDEN_A, 'checkpoint/config.json'), 'utf8'));
  const { rope_scaling: _r, quantization_config: _q, ...bare } = hf;
  const a = modelArgsFromHfConfig(bare);
  assert.equal(a.originalSeqLen, 0); // no YaRN
  assert.equal(a.ropeFactor, 40);
  assert.equal(a.dtype, 'bf16');
  assert.throws(() => modelArgsFromHfConfig({ ...hf, compress_ratios: [0, 0] }), /compress_ratios has 2 entries/);
  assert.throws(() => modelArgsFromHfConfig({ ...hf, scoring_func: 'relu' }), /scoring_func/);
  assert.throws(() => modelArgsFromHfConfig({ ...hf, hidden_size: 'big' }), /hidden_size/);
});

test('openCheckpoint: sharded (index) and single-file layouts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsv4-open-'));
  try {
    writeFileSync(join(dir, 'config.json'), readFileSync(join(GOLDEN_A, 'checkpoint/config.json')));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ temperature: 1.0, top_p: 1.0 }));
    const x = { name: 'x', dtype: 'BF16' as DType, shape: [4], bytes: bytes(8, 1) };
    const y = { name: 'y', dtype: 'F32' as DType, shape: [2], bytes: bytes(8, 2) };
    writeFile(join(dir, 's1.safetensors'), [x]);
    writeFile(join(dir, 's2.safetensors'), [y]);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { x: 's1.safetensors', y: 's2.safetensors' } }));
    const c = openCheckpoint(dir, { validate: false });
    assert.deepEqual(c.names().sort(), ['x', 'y']);
    assert.deepEqual(c.tensor('y').bytes, y.bytes);
    assert.equal(c.info('x').file, 's1.safetensors');
    assert.equal(c.generationConfig.temperature, 1.0);
    assert.equal(c.sideFiles.tokenizerJson, undefined);
    assert.equal(c.args.dim, 128);
    const seen: [number, string][] = [];
    c.onRead = (b, n) => seen.push([b, n]);
    c.tensor('x');
    c.readInto('y', new Uint8Array(8));
    assert.deepEqual(seen, [[8, 'x'], [8, 'y']]);
    c.close();

    const single = mkdtempSync(join(tmpdir(), 'dsv4-open1-'));
    writeFileSync(join(single, 'config.json'), readFileSync(join(GOLDEN_A, 'checkpoint/config.json')));
    writeFile(join(single, 'model.safetensors'), [x, y]);
    const c1 = openCheckpoint(single, { validate: false });
    assert.deepEqual(c1.tensor('x').bytes, x.bytes);
    c1.close();
    rmSync(single, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
