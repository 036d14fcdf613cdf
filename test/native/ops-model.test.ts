// Decode at a long synthetic context (full window, many compressed and selected entries)
// gives the same bits with the native decode-path ops as with their TypeScript
// references (the same native GEMMs underneath), on the tiny-a fixture checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/model/index.js';
import { fillSyntheticContext } from '../../src/model/synthetic-context.js';
import type { ModelState } from '../../src/model/state.js';
import { loadNative, makeNativeKernels } from '../../src/tensor/native.js';
import type { Kernels } from '../../src/tensor/kernels.js';

const { addon, reason } = loadNative();
const native = addon ? makeNativeKernels(addon) : null;
const skip = native?.sparseAttention ? false : `native ops unavailable: ${addon ? 'addon predates them' : reason}`;
const checkpoint = fileURLToPath(new URL('../../../test/fixtures/golden/tiny-a/checkpoint', import.meta.url));

/** The native kernels without their DecodeOps: every op runs its TypeScript reference. */
function withoutOps(k: Kernels): Kernels {
  const { actQuant, rmsNorm, hcMixes, hcWeighted, hcSplit, hcPost, sparseAttention, ...rest } = k;
  void [actQuant, rmsNorm, hcMixes, hcWeighted, hcSplit, hcPost, sparseAttention];
  return rest;
}

async function decode(kernels: Kernels, position: number): Promise<Uint32Array[]> {
  const m = await loadModel(checkpoint, { kernels, maxSeqLen: position + 16 });
  const st = fillSyntheticContext(m.newState() as ModelState, position, 64, 5);
  const out: Uint32Array[] = [];
  for (let j = 0; j < 2; j++) {
    const l = m.forward([{ state: st, tokens: new Int32Array([(j * 131 + 17) % m.vocabSize]) }])[0]!;
    out.push(new Uint32Array(l.buffer, l.byteOffset, l.length));
  }
  return out;
}

test('decode at a 1500-token synthetic context: native ops == TypeScript ops bit for bit', { skip }, async () => {
  const got = await decode(native!, 1500);
  const want = await decode(withoutOps(native!), 1500);
  for (let j = 0; j < want.length; j++) assert.deepEqual(got[j], want[j], `step ${j}`);
});
