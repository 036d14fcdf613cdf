// `npm install` hook: builds the optional native kernels (native/) with the
// machine's C++ compiler against the local Node headers, offline. Never fails
// the install: on any problem it prints one line and exits 0, and dsv4 then
// runs on the TypeScript kernels (src/tensor/native.ts says so at runtime).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const outDir = join(nativeDir, 'build', 'Release');
const target = join(outDir, 'dsv4_native.node');
const sources = ['addon.cc', 'pool.cc', 'kernels_scalar.cc', 'kernels_avx2.cc', 'fp4_avx2.cc', 'fp4_gemm_vnni.cc', 'indexer_scalar.cc', 'indexer_avx2.cc', 'indexer_vnni.cc', 'ops_scalar.cc', 'ops_avx2.cc', 'ops_addon.cc', 'bf16_scalar.cc', 'bf16_avx2.cc', 'dense_gemm_avx2.cc', 'batch.cc', 'ops2_scalar.cc', 'ops2_avx2.cc', 'ops2_addon.cc', 'topk.cc', 'heads_avx2.cc', 'fast_scalar.cc', 'fast_avx2.cc', 'fast_addon.cc', 'fastgemv_avx2.cc', 'fastgemv_scalar.cc', 'fastgemv_run.cc', 'fastchain_avx2.cc', 'fastchain_scalar.cc', 'fp4q8_scalar.cc', 'fp4q8_avx2.cc', 'mem.cc'];

function done(msg) {
  console.log(`dsv4: ${msg}`);
  process.exit(0);
}

if (process.env.DSV4_NATIVE === '0') done('native kernels skipped (DSV4_NATIVE=0); using the TypeScript kernels');

/** A Node install prefix whose include/node holds node_api.h (no header download). */
function nodeDir() {
  const cands = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..'), '/usr', '/usr/local'];
  return cands.find((d) => d && existsSync(join(d, 'include', 'node', 'node_api.h')));
}

function nodeGyp() {
  const cands = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return cands.find((p) => p && existsSync(p));
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  return { ok: r.status === 0, log: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

const dir = nodeDir();
if (!dir) done('native kernels not built (no local Node headers found); using the TypeScript kernels');

const tries = [];
const gyp = nodeGyp();
if (gyp) {
  const r = run(process.execPath, [gyp, 'rebuild', `--nodedir=${dir}`, '--loglevel=error'], nativeDir);
  if (r.ok && existsSync(target)) done(`native kernels built (node-gyp) -> ${target}`);
  tries.push(`node-gyp: ${r.log.trim().split('\n').slice(-3).join(' | ')}`);
}
// Fallback: one direct compiler call (same flags as binding.gyp).
mkdirSync(outDir, { recursive: true });
const cxx = process.env.CXX || 'c++';
const r = run(
  cxx,
  [
    '-O3', '-std=gnu++17', '-ffp-contract=off', '-fno-fast-math', '-fPIC', '-shared', '-pthread',
    `-I${join(dir, 'include', 'node')}`,
    ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
    ...sources.map((s) => join(nativeDir, s)),
    '-o', target,
  ],
  nativeDir,
);
if (r.ok) done(`native kernels built (${cxx}) -> ${target}`);
tries.push(`${cxx}: ${r.log.trim().split('\n').slice(0, 2).join(' | ')}`);
done(`native kernels not built, using the TypeScript kernels (${tries.join('; ').slice(0, 300)})`);
