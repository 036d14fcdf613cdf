// Header-level checkpoint validation (cheap: no tensor data is read).
import type { LocalCheckpoint } from './open.js';

/** Checks the opened checkpoint's tensors against the layout config.json implies; throws CheckpointError. */
export function validateCheckpoint(_ckpt: LocalCheckpoint): void {
  // Filled in by the inventory comparison (spec §5.1).
}
