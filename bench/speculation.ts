// What speculative decoding costs (engine/speculation.ts): a verify step (the next token plus one
// draft, two rows through every product) and an MTP draft (the MTP block and the head for one row,
// with the kernels the engine drafts with), each timed on its own over a fresh sequence whose MTP block is in step. Drafting pays when
// (1 + acceptance) tokens per step beat (verify + draft) / plain step time; random weights accept
// nothing, so the gain itself is not measurable here, only its break-even acceptance.
import type { Dsv4Model } from '../src/model/index.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { now } from './util.js';

export interface SpeculationCost {
  /** Median seconds of a verify step (2 rows, the draft then rejected). */
  verify: number;
  /** Median seconds of an MTP draft. */
  draft: number;
}

/** draftKernels: what the engine drafts with (the fast kernels under exact numerics, engine/worker.ts). */
export function speculationCost(m: Dsv4Model, steps: number, tokens: (n: number, salt: number) => Int32Array, draftKernels: Kernels | null): SpeculationCost | null {
  const spec = m.speculator;
  if (!spec) return null;
  m.draftKernels = draftKernels;
  const state = m.newState();
  m.forward([{ state, tokens: tokens(8, 300), mtp: 'run' }]);
  spec.draft([{ state, next: tokens(1, 301)[0]! }]);
  const verify: number[] = [];
  const draft: number[] = [];
  for (let i = 0; i < steps + 2; i++) {
    const t = tokens(2, 310 + i);
    let t0 = now();
    m.forward([{ state, tokens: t, drafts: 1, mtp: 'defer' }]);
    verify.push(now() - t0);
    spec.rejectDrafts(state);
    t0 = now();
    spec.draft([{ state, next: tokens(1, 400 + i)[0]! }]);
    draft.push(now() - t0);
  }
  const med = (x: number[]) => x.slice(2).sort((a, b) => a - b)[(x.length - 2) >> 1]!; // the first two warm the 2-row kernels
  return { verify: med(verify), draft: med(draft) };
}
