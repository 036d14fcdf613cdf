// The forward pass against the golden sets in test/fixtures/golden (bit-exact logits).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyGolden, summarize } from '../../src/model/golden.js';
import { referenceKernels } from '../../src/tensor/reference-kernels.js';
import type { Kernels } from '../../src/tensor/kernels.js';

const dir = (name: string) => new URL(`../../../test/fixtures/golden/${name}`, import.meta.url).pathname;

// tiny-a with the default kernels (native when built), tiny-b with the TypeScript reference
for (const name of ['tiny-a', 'tiny-b']) {
  test(`${name}: prefill, decode and MTP logits equal the goldens bit for bit`, async () => {
    const r = await verifyGolden(dir(name), { layers: name === 'tiny-b', kernels: name === 'tiny-b' ? referenceKernels : undefined });
    assert.equal(r.rows.length, 21, summarize(r));
    for (const row of r.rows) {
      assert.ok(row.exact, `${row.name}: max |Δlogit| ${row.maxAbsDiff}`);
      assert.equal(row.maxAbsDiff, 0);
      assert.equal(row.top1, row.goldenTop1);
    }
    assert.equal(r.firstDifference, undefined);
    assert.ok(r.ok);
  });
}

test('a small change inside one GEMM is reported, with the first differing layer', async () => {
  let calls = 0;
  const perturbed: Kernels = {
    name: 'perturbed',
    fp8Gemm(x, w, y) {
      referenceKernels.fp8Gemm(x, w, y);
      // the 10th FP8 GEMM: layer 1 of the prefill (7 per layer: wq_a, wq_b, wkv, wo_b, shared w1, w3, w2): scale its outputs by 1 + 2^-6
      if (++calls === 10) for (let i = 0; i < y.length; i++) y[i] = y[i]! * (1 + 2 ** -6);
    },
    fp4Gemm: referenceKernels.fp4Gemm,
  };
  const r = await verifyGolden(dir('tiny-b'), { layers: true, kernels: perturbed });
  assert.equal(r.ok, false);
  assert.ok(r.rows.some((x) => !x.exact));
  assert.match(r.firstDifference ?? '', /^prefill layer 1,/);
  assert.match(summarize(r), /^FAIL tiny-b/);
});
