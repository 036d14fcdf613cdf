// --numerics for the commands that run a model (serve, chat, run, verify, bench): canonical
// rounding (default, bit-exact to the reference) or the named fast mode (tensor/fast-kernels.ts).
import { Option } from 'commander';
export type { Numerics } from '../tensor/fast-kernels.js';

export const FAST_NUMERICS_NOTE =
  'fast numerics: FP8/BF16 products and FP4 ones of 16 or more rows (prefill) accumulate in fp32 lanes, FP4 ones of fewer rows (decode experts) take int8 activations, not bit-exact to the reference (drift: `dsv4 verify --numerics fast`)';

export function numericsOption(): Option {
  return new Option('--numerics <mode>', 'exact: canonical rounding, bit-exact to the reference; fast: fp32 prefill products, faster, small drift')
    .choices(['exact', 'fast'])
    .env('DSV4_NUMERICS');
}

/** --speculative for the commands that serve a model (serve, chat, run): MTP drafting (engine/speculation.ts). */
export function speculativeOption(): Option {
  return new Option('--speculative <mode>', 'mtp: draft the next token with the checkpoint\'s MTP block and verify it in the same step (same output; faster when most drafts are accepted, see README); off')
    .choices(['mtp', 'off'])
    .default('off');
}
