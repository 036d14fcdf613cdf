// Undo records for draft rows (speculative decoding): what a forward call's trailing draft rows
// overwrite in a layer's state, saved just before they overwrite it, so that rejecting the drafts
// leaves the state bit-identical to never having run them (ModelState.rejectDrafts).
//
// A draft row at position t writes: its window-ring slot t mod W (attention.ts), one pending row of
// each compressor (slot t mod r, after the previous block's r rows when r = 4 overlaps) and, at a
// block's end, a compressed entry; with overlap the pending rows then shift (compressor.ts).
import type { CompressorState, EntryCache } from './state.js';

/** One compressor's pending rows as they were before the first draft position, and its entry count. */
export class CompressorUndo {
  /** First draft position; -1 = nothing recorded. */
  from = -1;
  private count = 0;
  private kv = new Float32Array(0);
  private score = new Float32Array(0);
  /** Saved rows (non-overlapping compressors save only the rows drafts write; -1 = all rows). */
  private readonly rows: number[] = [];
  private all = false;

  arm(from: number): void {
    this.from = from;
    this.rows.length = 0;
    this.all = false;
  }

  /** Called before position t writes pending row `slot` (overlap: the rows shift at a block's end, so all are kept). */
  note(st: CompressorState, cache: EntryCache, t: number, slot: number, overlap: boolean, width: number): void {
    if (this.from < 0 || t < this.from || this.all) return;
    if (t === this.from) this.count = cache.count;
    if (this.kv.length < st.kv.length) {
      this.kv = new Float32Array(st.kv.length);
      this.score = new Float32Array(st.score.length);
    }
    if (overlap) {
      this.kv.set(st.kv);
      this.score.set(st.score);
      this.all = true;
      return;
    }
    if (this.rows.includes(slot)) return;
    this.rows.push(slot);
    const o = slot * width;
    this.kv.set(st.kv.subarray(o, o + width), o);
    this.score.set(st.score.subarray(o, o + width), o);
  }

  restore(st: CompressorState, cache: EntryCache, width: number): void {
    if (this.from < 0) return;
    if (this.all) {
      st.kv.set(this.kv.subarray(0, st.kv.length));
      st.score.set(this.score.subarray(0, st.score.length));
    } else {
      for (const slot of this.rows) {
        const o = slot * width;
        st.kv.set(this.kv.subarray(o, o + width), o);
        st.score.set(this.score.subarray(o, o + width), o);
      }
    }
    // `note` ran at the first draft position only if the call reached it; entries only ever grow
    if (this.rows.length > 0 || this.all) cache.truncate(this.count);
    this.from = -1;
  }
}

/** A layer's undo record: ring slots of the draft positions and both compressors'. */
export class LayerUndo {
  from = -1;
  n = 0;
  ring = new Uint16Array(0);
  readonly comp = new CompressorUndo();
  readonly idx = new CompressorUndo();
}
