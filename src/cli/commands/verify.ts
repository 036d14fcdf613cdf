// `dsv4 verify --golden DIR [--model DIR] [--layers]`: replays a golden set
// (prefill, teacher-forced decode, MTP) and compares the logits bit for bit.
import type { Command } from 'commander';
import { verifyGolden, summarize } from '../../model/golden.js';
import { numericsOption, type Numerics } from '../numerics.js';

interface VerifyCliOptions {
  golden: string;
  model?: string;
  layers?: boolean;
  numerics?: Numerics;
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('check the forward pass against a golden set (bit-exact logits); exit 1 on any mismatch')
    .requiredOption('--golden <dir>', 'golden directory (golden.json + arrays/)')
    .option('--model <dir>', 'checkpoint directory (default: <golden>/checkpoint)')
    .option('--layers', 'compare per-layer hidden states and name the first that differs')
    .addOption(numericsOption())
    .action(async (opts: VerifyCliOptions) => {
      const t0 = Date.now();
      const report = await verifyGolden(opts.golden, {
        modelDir: opts.model,
        layers: opts.layers,
        numerics: opts.numerics,
        log: (line) => process.stdout.write(line + '\n'),
      });
      process.stdout.write(`${summarize(report)} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
      if (!report.ok) process.exitCode = 1;
    });
}
