// The whole forward pass gives the same bits with the native kernels as with
// the TypeScript reference (prefill, then decode steps), on a synthetic tiny
// checkpoint written by `dsv4 init`'s library call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCheckpoint } from '../../src/checkpoint/init.js';
import { loadModel } from '../../src/model/index.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import type { Kernels } from '../../src/tensor/kernels.js';

const { addon, reason } = loadNative();

async function logits(dir: string, kernels: Kernels): Promise<Float32Array[]> {
  const m = await loadModel(dir, { kernels });
  const st = m.newState();
  const out: Float32Array[] = [];
  const prompt = new Int32Array(40).map((_, i) => (i * 37 + 11) % m.vocabSize);
  out.push(m.forward([{ state: st, tokens: prompt }])[0]!);
  for (let j = 0; j < 3; j++) out.push(m.forward([{ state: st, tokens: new Int32Array([(j * 101 + 7) % m.vocabSize]) }])[0]!);
  return out;
}

test('model forward: native kernels == reference kernels bit for bit', { skip: addon ? false : `native addon unavailable: ${reason}` }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsv4-native-model-'));
  try {
    await initCheckpoint({ preset: 'tiny', out: dir, seed: 3 });
    const want = await logits(dir, referenceKernels);
    const got = await logits(dir, makeNativeKernels(addon!));
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) {
      assert.deepEqual(new Uint32Array(got[i]!.buffer, got[i]!.byteOffset, got[i]!.length), new Uint32Array(want[i]!.buffer, want[i]!.byteOffset, want[i]!.length), `step ${i}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
