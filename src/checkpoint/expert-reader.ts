// Worker thread of the expert cache's prefetcher: reads an expert's tensors into
// a shared slab while the main thread computes, then raises the request's flag
// (1 = done, 2 = failed; the main thread then re-reads synchronously and reports
// the error properly). Positional reads only, one fd per shard.
import { openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

export interface ReadRequest {
  slab: SharedArrayBuffer;
  flag: Int32Array;
  reads: { path: string; offset: number; length: number; at: number }[];
}

const fds = new Map<string, number>();

function fdOf(path: string): number {
  let fd = fds.get(path);
  if (fd === undefined) fds.set(path, (fd = openSync(path, 'r')));
  return fd;
}

parentPort?.on('message', (m: ReadRequest) => {
  let state = 1;
  try {
    for (const r of m.reads) {
      const dst = new Uint8Array(m.slab, r.at, r.length);
      for (let done = 0; done < r.length; ) {
        const n = readSync(fdOf(r.path), dst, done, Math.min(1 << 30, r.length - done), r.offset + done);
        if (n === 0) throw new Error('short read');
        done += n;
      }
    }
  } catch {
    state = 2;
  }
  Atomics.store(m.flag, 0, state);
  Atomics.notify(m.flag, 0);
});
