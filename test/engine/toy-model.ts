// A small deterministic stand-in for ModelRunner, used only where the real model is too slow to
// exercise scheduling logic (queue positions, budgets). Its logits depend on every consumed token,
// so any state mix-up between sequences or a wrong restore changes the output.
import type { ForwardSegment, ModelRunner, SequenceState } from '../../src/model/api.js';

class ToyState implements SequenceState {
  constructor(public position = 0, public h = 0x12345) {}
  byteSize(): number {
    return 1024 + 64 * this.position;
  }
  reset(): void {
    this.position = 0;
    this.h = 0x12345;
  }
  clone(): ToyState {
    return new ToyState(this.position, this.h);
  }
  serialize(): Uint8Array {
    return new Uint8Array(new Float64Array([this.position, this.h]).buffer);
  }
}

export class ToyModel implements ModelRunner {
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  /** Like Dsv4Model.args: the scheduler reads the sliding window from it. */
  readonly args = { windowSize: 8 };
  forwardCalls = 0;
  constructor(vocabSize = 64, maxSeqLen = 4096) {
    this.vocabSize = vocabSize;
    this.maxSeqLen = maxSeqLen;
  }
  newState(): SequenceState {
    return new ToyState();
  }
  restoreState(bytes: Uint8Array): SequenceState {
    const f = new Float64Array(bytes.slice().buffer);
    return new ToyState(f[0], f[1]);
  }
  forward(segments: ForwardSegment[]): Float32Array[] {
    this.forwardCalls++;
    return segments.map(({ state, tokens }) => {
      const s = state as ToyState;
      for (const t of tokens) {
        if (s.position >= this.maxSeqLen) throw new Error('context overflow');
        s.h = (Math.imul(s.h ^ (t + 1), 0x01000193) + s.position) >>> 0;
        s.position++;
      }
      const out = new Float32Array(this.vocabSize);
      for (let i = 0; i < this.vocabSize; i++) out[i] = Math.sin((s.h % 1000003) * (i + 1) * 1e-3) * 4;
      return out;
    });
  }
}
