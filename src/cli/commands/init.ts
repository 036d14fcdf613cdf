// `dsv4 init`: writes a deterministic random checkpoint in the official layout
// (names, dtypes, shapes, shards + index, config.json, generation_config.json,
// and the V4 tokenizer files when the vocabulary is the real one).
import { InvalidArgumentError, type Command } from 'commander';
import { initCheckpoint } from '../../checkpoint/init.js';
import { isPresetName, PRESET_NAMES, PRESETS, type ShapeOverrides } from '../../checkpoint/presets.js';
import { formatBytes, parseSize } from '../../checkpoint/size.js';
import { V4_VOCAB_SIZE, writeTokenizerFiles } from '../../tokenizer/index.js';
import { CliError, ExitCode } from '../chat/errors.js';
import { createProgress } from '../progress.js';

interface InitCliOptions extends Omit<ShapeOverrides, 'expertDtype'> {
  preset: string;
  out: string;
  seed: number;
  expertDtype?: 'fp4' | 'fp8';
  maxShardSize?: number;
  configOnly?: boolean;
  sparse?: boolean;
  force?: boolean;
  tokenizer: boolean;
}

function int(min: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

function oneOf<T extends string>(allowed: readonly T[]): (v: string) => T {
  return (v: string) => {
    if (!(allowed as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected ${allowed.join(' or ')}`);
    return v as T;
  };
}

function size(v: string): number {
  const n = parseSize(v);
  if (n === null || n <= 0) throw new InvalidArgumentError('expected a size such as 512M or 2G');
  return n;
}

export function register(program: Command): void {
  program
    .command('init')
    .summary('write a random checkpoint in the official V4 layout')
    .description(
      'Writes a deterministic (per --seed) random checkpoint in the official Hugging Face layout. Presets:\n' +
        PRESET_NAMES.map((n) => `  ${n.padEnd(9)} ${PRESETS[n].about}`).join('\n') +
        '\nflash/pro are real sizes (160 GB / 865 GB): use --config-only to write just config.json and the index.',
    )
    .requiredOption('--out <dir>', 'output directory (created if needed)')
    .option('--preset <name>', `one of ${PRESET_NAMES.join(', ')}`, 'tiny')
    .option('--seed <n>', 'random seed', int(0), 0)
    .option('--layers <n>', 'number of transformer blocks (compress ratios follow the preset pattern)', int(1))
    .option('--dim <n>', 'hidden size', int(32))
    .option('--experts <n>', 'routed experts per layer', int(1))
    .option('--top-k <n>', 'experts activated per token', int(1))
    .option('--inter <n>', 'expert intermediate size', int(32))
    .option('--vocab <n>', 'vocabulary size', int(2))
    .option('--heads <n>', 'attention heads', int(1))
    .option('--hash-layers <n>', 'leading hash-routed layers', int(0))
    .option('--dtype <fp8|bf16>', 'plain linear weights (default fp8, as released)', oneOf(['fp8', 'bf16'] as const))
    .option('--expert-dtype <fp4|fp8>', 'routed expert weights (default fp4, as released)', oneOf(['fp4', 'fp8'] as const))
    .option('--max-shard-size <size>', 'largest shard, e.g. 512M (default: per preset)', size)
    .option('--config-only', 'write config.json, generation_config.json and the index only (no weights, no tokenizer)')
    .option('--sparse', 'all-zero weights as sparse files: the full layout (any size) in almost no disk space')
    .option('--no-tokenizer', 'do not write tokenizer.json / tokenizer_config.json')
    .option('--force', 'replace a checkpoint already in --out')
    .action(async (o: InitCliOptions) => {
      if (!isPresetName(o.preset)) throw new CliError(`unknown preset '${o.preset}' (choose one of ${PRESET_NAMES.join(', ')})`, ExitCode.usage);
      const progress = createProgress(`Writing ${o.preset} checkpoint`, { unit: 'bytes' });
      let r;
      try {
        r = await initCheckpoint({
          preset: o.preset,
          out: o.out,
          seed: o.seed,
          overrides: { layers: o.layers, dim: o.dim, experts: o.experts, topK: o.topK, inter: o.inter, vocab: o.vocab, heads: o.heads, hashLayers: o.hashLayers, dtype: o.dtype, expertDtype: o.expertDtype },
          configOnly: o.configOnly,
          sparse: o.sparse,
          maxShardBytes: o.maxShardSize,
          force: o.force,
          onProgress: (d, t) => progress.update(d, t),
        });
      } catch (e) {
        progress.fail();
        throw e; // CheckpointError: one line, exit code 4 (main.ts)
      }
      progress.finish();
      // The real tokenizer only fits the real vocabulary (spec §6.1).
      const tok = o.tokenizer && !o.configOnly && r.args.vocabSize === V4_VOCAB_SIZE;
      if (tok) await writeTokenizerFiles(o.out);
      const what = o.configOnly ? 'config.json + index for' : `${r.shards} ${o.sparse ? 'sparse all-zero ' : ''}shard(s),`;
      process.stdout.write(
        `${o.out}: ${what} ${r.tensors.toLocaleString('en-US')} tensors, ${r.bytes.toLocaleString('en-US')} bytes (${formatBytes(r.bytes)})` +
          `${tok ? ', tokenizer files' : ''}; preset ${o.preset}, seed ${o.seed}\n`,
      );
    });
}
