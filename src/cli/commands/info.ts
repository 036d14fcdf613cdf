// `dsv4 info DIR`: architecture summary, tensor / byte / parameter counts (from
// the inventory config.json implies, and from the files when present), sequence
// state size, and what a routed-expert memory budget implies.
import { InvalidArgumentError, type Command } from 'commander';
import { checkpointInfo, type CheckpointInfo } from '../../checkpoint/info.js';
import { formatBytes, parseSize } from '../../checkpoint/size.js';

interface InfoCliOptions {
  context?: number;
  memoryBudget?: number;
  maxSeqLen?: number;
  json?: boolean;
}

const n = (x: number): string => Math.round(x).toLocaleString('en-US');
const b = (x: number): string => `${n(x)} B (${formatBytes(x)})`;
const billions = (x: number): string => (x >= 1e9 ? `${(x / 1e9).toFixed(2)} B` : `${(x / 1e6).toFixed(2)} M`);

function positiveInt(v: string): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x <= 0) throw new InvalidArgumentError('expected a positive integer');
  return x;
}

function size(v: string): number {
  const x = parseSize(v);
  if (x === null) throw new InvalidArgumentError('expected a size such as 512M or 20G');
  return x;
}

export function formatInfo(i: CheckpointInfo): string {
  const a = i.args;
  const c = i.census;
  const s = i.inventory;
  const hcaRatios = [...new Set(a.compressRatios.slice(0, a.nLayers).filter((r) => r !== 0 && r !== 4))].join('/');
  const lines = [
    `DeepSeek-V4 checkpoint ${i.dir}`,
    `  layers      ${a.nLayers} (${c.window} window-only, ${c.csa} CSA r=4, ${c.hca} HCA${hcaRatios ? ` r=${hcaRatios}` : ''}) + ${a.nMtpLayers} MTP; ${c.hash} hash-routed`,
    `  attention   hidden ${a.dim}, ${a.nHeads} heads x ${a.headDim} (rope ${a.ropeHeadDim}), q_lora ${a.qLoraRank}, o ${a.oGroups}x${a.oLoraRank}, window ${a.windowSize}`,
    `  indexer     ${a.indexNHeads} heads x ${a.indexHeadDim}, top-k ${a.indexTopk}`,
    `  experts     ${a.nRoutedExperts} routed (top ${a.nActivatedExperts}, ${a.scoreFunc}, scale ${a.routeScale}) + ${a.nSharedExperts} shared, inter ${a.moeInterDim}, swiglu limit ${a.swigluLimit}`,
    `  formats     linears ${a.dtype}${a.dtype === 'fp8' ? ' (e4m3 + ue8m0 128x128)' : ''}, routed experts ${a.expertDtype ?? a.dtype}${a.expertDtype === 'fp4' ? ' (e2m1 + ue8m0 1x32)' : ''}`,
    `  rope        theta ${a.ropeTheta} / compressed ${a.compressRopeTheta}, ${a.originalSeqLen > 0 ? `YaRN x${a.ropeFactor} over ${a.originalSeqLen}` : 'no YaRN'}; vocab ${a.vocabSize}; max_seq_len ${a.maxSeqLen}`,
    `tensors       ${n(s.tensors)} expected from config.json` +
      (i.files ? `; on disk ${n(i.files.tensors)} in ${i.files.shards} file(s), ${n(i.files.bytes)} B` : ' (no weights present: figures from config.json)'),
    `bytes         ${b(s.bytes)}`,
    `  by dtype    ${Object.entries(s.bytesByDtype).sort((x, y) => y[1]! - x[1]!).map(([k, v]) => `${k} ${formatBytes(v!)}`).join(', ')}`,
    `  by role     ${Object.entries(s.bytesByRole).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${formatBytes(v)}`).join(', ')}`,
    `  one expert  ${b(s.expertBytes)}`,
    `parameters    ${billions(s.params)} total = ${billions(s.params - s.mtpParams)} main model + ${billions(s.mtpParams)} MTP; ${billions(s.activeParams)} active per token (main model, embedding included)`,
    `sequence      ${n(i.state.perToken)} B/token + ${formatBytes(i.state.windows)} windows + ${formatBytes(i.state.compressorScratch)} compressor state per sequence;` +
      ` at context ${n(i.state.context)}: ${formatBytes(i.state.atContext)}`,
  ];
  const p = i.budget;
  if (p) {
    lines.push(
      `memory budget ${formatBytes(p.budget)} for routed experts: ${n(p.cachedExperts)} of ${n(p.totalExperts)} experts cached (${(p.cachedFraction * 100).toFixed(1)}%);` +
        ` resident dense ${formatBytes(p.residentBytes)}; weights in RAM ~${formatBytes(p.weightsMemory)}` +
        ` (+ ${formatBytes(i.state.atContext)} per sequence at context ${n(i.state.context)})`,
    );
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('info')
    .summary('describe a checkpoint: architecture, sizes, parameters, memory')
    .description('Describes a checkpoint directory (or one holding only config.json): architecture, tensor and byte counts, parameters, sequence-state size and what a memory budget implies.')
    .argument('<dir>', 'checkpoint directory')
    .option('--context <n>', 'context length for the sequence-state figure (default max_seq_len)', positiveInt)
    .option('--memory-budget <size>', 'RAM for routed experts, e.g. 16G', size)
    .option('--max-seq-len <n>', 'override max_seq_len (default 4096, as the reference)', positiveInt)
    .option('--json', 'print the figures as JSON')
    .action((dir: string, o: InfoCliOptions) => {
      const info = checkpointInfo(dir, { context: o.context, memoryBudget: o.memoryBudget, maxSeqLen: o.maxSeqLen });
      process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : formatInfo(info));
    });
}
