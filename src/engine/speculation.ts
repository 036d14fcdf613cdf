// When to draft (speculative decoding with the MTP block, scheduler.ts). A verify step reads the
// weights once for two rows, but it is not free: on a 2-core AVX2 machine the exact 2-row step
// costs ~1.55x a 1-row step and the MTP draft another ~0.45x on bench-2g, whose head is half its
// bytes (`node bench` figures in the README). Drafting pays only when most drafts are accepted, so
// the policy watches the acceptance of the last `window` drafts over all sequences and pauses
// drafting for `pauseSteps` steps when it falls under `minAcceptance` (e.g. random weights, whose
// MTP block guesses at chance); after a pause new sequences try again.

export interface DraftPolicyOptions {
  /** Acceptance below which drafting pauses. Default 0.7. */
  minAcceptance?: number;
  /** Drafts judged together. Default 32. */
  window?: number;
  /** Steps drafting stays off after a poor window. Default 1024. */
  pauseSteps?: number;
}

export class DraftPolicy {
  readonly minAcceptance: number;
  readonly window: number;
  readonly pauseSteps: number;
  private readonly outcomes: boolean[] = [];
  private pausedUntil = -1;
  readonly counters = { drafted: 0, accepted: 0, pauses: 0 };

  constructor(o: DraftPolicyOptions = {}) {
    this.minAcceptance = o.minAcceptance ?? 0.7;
    this.window = o.window ?? 32;
    this.pauseSteps = o.pauseSteps ?? 1024;
    if (!(this.minAcceptance >= 0 && this.minAcceptance <= 1)) throw new Error('minAcceptance must be within 0..1');
    if (!(this.window >= 1) || !(this.pauseSteps >= 0)) throw new Error('window must be >= 1 and pauseSteps >= 0');
  }

  /** Whether sequences may draft (and new ones keep their MTP block in step) at this step. */
  active(step: number): boolean {
    return step >= this.pausedUntil;
  }

  record(accepted: boolean, step: number): void {
    this.counters.drafted++;
    if (accepted) this.counters.accepted++;
    this.outcomes.push(accepted);
    if (this.outcomes.length < this.window) return;
    const rate = this.outcomes.filter(Boolean).length / this.outcomes.length;
    this.outcomes.length = 0;
    if (rate < this.minAcceptance) {
      this.pausedUntil = step + this.pauseSteps;
      this.counters.pauses++;
    }
  }
}

/**
 * The draft: the MTP block's most likely token, among `allowed` when given (greedy drafting;
 * verification keeps the output exact whatever is drafted).
 */
export function argmax(logits: Float32Array, allowed: Int32Array | null = null): number {
  let best = allowed && allowed.length > 0 ? allowed[0]! : 0;
  let v = -Infinity;
  const n = allowed ? allowed.length : logits.length;
  for (let j = 0; j < n; j++) {
    const i = allowed ? allowed[j]! : j;
    if (logits[i]! > v) {
      v = logits[i]!;
      best = i;
    }
  }
  return best;
}
