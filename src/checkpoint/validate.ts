// Header-level checkpoint validation (cheap: no tensor data is read): the tensors
// present must be exactly the inventory config.json implies (spec §5.1), with the
// same dtypes and shapes. Shard-level problems (truncation, corrupt headers,
// offsets out of range, index naming a missing shard) are caught while opening.
import { join } from 'node:path';
import { CheckpointError } from './errors.js';
import { tensorInventory } from './inventory.js';
import type { LocalCheckpoint } from './open.js';

const fmt = (dtype: string, shape: readonly number[]): string => `${dtype} [${shape.join(', ')}]`;

/** Throws CheckpointError naming the file and tensor of the first problem found. */
export function validateCheckpoint(ckpt: LocalCheckpoint): void {
  const expected = tensorInventory(ckpt.args);
  const config = join(ckpt.dir, 'config.json');
  const missing: string[] = [];
  const seen = new Set<string>();
  for (const t of expected) {
    if (!ckpt.has(t.name)) {
      missing.push(t.name);
      continue;
    }
    seen.add(t.name);
    const got = ckpt.info(t.name);
    if (got.dtype !== t.dtype || got.shape.length !== t.shape.length || got.shape.some((d, i) => d !== t.shape[i])) {
      throw new CheckpointError(
        `stored as ${fmt(got.dtype, got.shape)} but ${config} implies ${fmt(t.dtype, t.shape)} (wrong shape/dtype, or config inconsistent with the tensors)`,
        join(ckpt.dir, got.file),
        t.name,
      );
    }
  }
  if (missing.length > 0) {
    const more = missing.length > 1 ? ` (and ${missing.length - 1} more missing)` : '';
    throw new CheckpointError(`missing tensor required by ${config}${more}`, ckpt.dir, missing[0]! + '');
  }
  if (seen.size !== ckpt.names().length) {
    const extra = ckpt.names().filter((n) => !seen.has(n));
    const more = extra.length > 1 ? ` (and ${extra.length - 1} more)` : '';
    throw new CheckpointError(`unexpected tensor: not part of the layout ${config} implies${more}`, join(ckpt.dir, ckpt.info(extra[0]!).file), extra[0]);
  }
}
