// The embedded default model: a small, deterministic, randomly initialised V4 checkpoint in the
// official Hugging Face layout (the checkpoint helper's `default` preset, fixed seed). It is
// generated locally on first use, never downloaded, into a cache directory, so `npm start` and
// `dsv4 chat` work on a fresh clone. It is NOT a trained model: its answers are noise.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { initCheckpoint } from '../checkpoint/init.js';
import { writeTokenizerFiles } from '../tokenizer/index.js';
import { CliError, ExitCode, errorLine } from './chat/errors.js';
import { createProgress } from './progress.js';

/** Bump when the preset or seed changes, so old caches are not reused. */
export const DEFAULT_MODEL_NAME = 'default-model-v1';
export const DEFAULT_MODEL_PRESET = 'default';
export const DEFAULT_MODEL_SEED = 1;
/** Written last; a directory without it is an interrupted generation and is redone. */
export const COMPLETE_MARKER = '.dsv4-complete.json';

/** Progress callback of a generator: bytes written so far out of the total. */
export type GenerateProgress = (done: number, total: number) => void;
/** Writes the default checkpoint into an empty directory. */
export type GenerateDefaultModel = (outDir: string, onProgress: GenerateProgress) => Promise<void>;

/** Where dsv4 keeps generated data: $DSV4_HOME, else $XDG_CACHE_HOME/dsv4, else ~/.cache/dsv4. */
export function dsv4Home(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DSV4_HOME) return env.DSV4_HOME;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'dsv4');
}

export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(dsv4Home(env), DEFAULT_MODEL_NAME);
}

export interface EnsureDefaultModelOptions {
  /** Target directory (default: defaultModelDir()). */
  dir?: string;
  /** The writer (default: the checkpoint helper's `default` preset). */
  generate?: GenerateDefaultModel;
  /** Draw progress (default: only on a TTY, see progress.ts). */
  progress?: boolean;
}

/**
 * Returns the directory of the embedded default model, generating it first if it is missing or
 * incomplete. Generation writes into a temporary sibling and renames it into place, so a crash or
 * two processes starting at once never leave a half-written model behind.
 */
export async function ensureDefaultModel(opts: EnsureDefaultModelOptions = {}): Promise<string> {
  const dir = opts.dir ?? defaultModelDir();
  if (isComplete(dir)) return dir;
  const parent = dirname(dir);
  const tmp = join(parent, `.${DEFAULT_MODEL_NAME}.tmp-${process.pid}-${Date.now()}`);
  const progress = createProgress('Generating the default model', {
    unit: 'bytes',
    enabled: opts.progress,
  });
  try {
    mkdirSync(tmp, { recursive: true });
    await (opts.generate ?? generateWithCheckpointInit)(tmp, (done, total) => progress.update(done, total));
    writeFileSync(
      join(tmp, COMPLETE_MARKER),
      JSON.stringify({ name: DEFAULT_MODEL_NAME, preset: DEFAULT_MODEL_PRESET, seed: DEFAULT_MODEL_SEED, created: new Date().toISOString() }) + '\n',
    );
    if (existsSync(dir) && !isComplete(dir)) rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(tmp, dir);
    } catch (err) {
      // Another process finished first: use its copy.
      if (!isComplete(dir)) throw err;
      rmSync(tmp, { recursive: true, force: true });
    }
    progress.finish(`ready in ${dir}`);
    return dir;
  } catch (err) {
    progress.fail();
    rmSync(tmp, { recursive: true, force: true });
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot generate the default model in ${dir}: ${errorLine(err)}`, ExitCode.model);
  }
}

function isComplete(dir: string): boolean {
  try {
    const marker = JSON.parse(readFileSync(join(dir, COMPLETE_MARKER), 'utf8')) as { name?: string };
    return marker.name === DEFAULT_MODEL_NAME && existsSync(join(dir, 'config.json'));
  } catch {
    return false;
  }
}

/** The default writer: the checkpoint helper's `init` (`default` preset, fixed seed) plus the V4 tokenizer files. */
async function generateWithCheckpointInit(outDir: string, onProgress: GenerateProgress): Promise<void> {
  await initCheckpoint({ preset: DEFAULT_MODEL_PRESET, out: outDir, seed: DEFAULT_MODEL_SEED, onProgress });
  await writeTokenizerFiles(outDir);
}
