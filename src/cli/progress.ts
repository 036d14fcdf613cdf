// Progress lines for long work (model generation, checkpoint loading, long prefill).
// Drawn on stderr with '\r' redraws, and only when a person is watching: stdout and stderr both
// TTYs (so `dsv4 run ... | cat` and logs stay clean). DSV4_PROGRESS=0|1 forces it off or on.

export type ProgressUnit = 'bytes' | 'tokens' | 'items';

export interface Progress {
  /** Sets the amount done (and optionally a new total). Cheap: redraws at most ~10 times a second. */
  update(done: number, total?: number): void;
  /** Ends the line with a final state ("done in 1.2s" or the given note). */
  finish(note?: string): void;
  /** Ends the line, marking the work as failed. */
  fail(note?: string): void;
}

export interface ProgressOptions {
  total?: number;
  unit?: ProgressUnit;
  /** Where to draw (default process.stderr). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Overrides the TTY rule. */
  enabled?: boolean;
  /** Injected clock, for tests. */
  now?: () => number;
}

/** Whether progress should be drawn by default in this process. */
export function progressEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.DSV4_PROGRESS === '0') return false;
  if (env.DSV4_PROGRESS === '1') return true;
  return Boolean(process.stdout.isTTY && process.stderr.isTTY);
}

const REDRAW_MS = 100;
const BAR_WIDTH = 24;

export function createProgress(label: string, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const enabled = opts.enabled ?? progressEnabled();
  const now = opts.now ?? Date.now;
  const unit = opts.unit ?? 'items';
  const start = now();
  let total = opts.total;
  let done = 0;
  let lastDraw = -Infinity;
  let ended = false;

  const draw = (final: string | null) => {
    const line = formatProgressLine(label, done, total, unit, now() - start, final);
    const width = Math.max(20, (stream.columns ?? 100) - 1);
    stream.write('\r\x1b[K' + line.slice(0, width) + (final === null ? '' : '\n'));
  };

  return {
    update(d, t) {
      done = d;
      if (t !== undefined) total = t;
      if (!enabled || ended) return;
      const ts = now();
      if (ts - lastDraw < REDRAW_MS && !(total !== undefined && done >= total)) return;
      lastDraw = ts;
      draw(null);
    },
    finish(note) {
      if (!enabled || ended) return;
      ended = true;
      if (total !== undefined) done = Math.max(done, total);
      draw(note ?? `done in ${formatSeconds(now() - start)}`);
    },
    fail(note) {
      if (!enabled || ended) return;
      ended = true;
      draw(note ?? 'failed');
    },
  };
}

/** One progress line: `label [#####.....]  42%  12.0 MB / 28.6 MB  1.3s`, or `label: note` when final. */
export function formatProgressLine(
  label: string,
  done: number,
  total: number | undefined,
  unit: ProgressUnit,
  elapsedMs: number,
  final: string | null,
): string {
  if (final !== null) return `${label}: ${final}`;
  const amount = total === undefined ? formatAmount(done, unit) : `${formatAmount(done, unit)} / ${formatAmount(total, unit)}`;
  if (total === undefined || total <= 0) return `${label}  ${amount}  ${formatSeconds(elapsedMs)}`;
  const frac = Math.min(1, Math.max(0, done / total));
  const filled = Math.round(frac * BAR_WIDTH);
  const bar = '#'.repeat(filled) + '.'.repeat(BAR_WIDTH - filled);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return `${label} [${bar}] ${pct}  ${amount}  ${formatSeconds(elapsedMs)}`;
}

export function formatAmount(n: number, unit: ProgressUnit): string {
  if (unit !== 'bytes') return `${Math.round(n).toLocaleString('en-US')}${unit === 'tokens' ? ' tok' : ''}`;
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function formatSeconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

export interface Spinner {
  /** Clears the spinner line. Safe to call more than once. */
  stop(): void;
}

const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * An indeterminate progress line (`⠋ Loading model  2.3s`) for work that reports no fraction:
 * model start-up, waiting for the first token while a long prompt is prefilled.
 */
export function startSpinner(label: string, opts: Omit<ProgressOptions, 'total' | 'unit'> = {}): Spinner {
  const stream = opts.stream ?? process.stderr;
  const enabled = opts.enabled ?? progressEnabled();
  const now = opts.now ?? Date.now;
  if (!enabled) return { stop: () => {} };
  const start = now();
  let frame = 0;
  const draw = () => stream.write(`\r\x1b[K${SPINNER_FRAMES[frame++ % SPINNER_FRAMES.length]} ${label}  ${formatSeconds(now() - start)}`);
  const timer = setInterval(draw, REDRAW_MS);
  timer.unref();
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      stream.write('\r\x1b[K');
    },
  };
}

/** Runs `work` under a spinner that is cleared when it settles. */
export async function withSpinner<T>(label: string, work: Promise<T>, opts?: Omit<ProgressOptions, 'total' | 'unit'>): Promise<T> {
  const spinner = startSpinner(label, opts);
  try {
    return await work;
  } finally {
    spinner.stop();
  }
}
