// Runs every compiled test file (dist/test/**/*.test.js) with Node's built-in runner.
// Node 20's `node --test` takes explicit paths, so we collect them here.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filter = process.argv.slice(2);
// Only compiled tests whose TypeScript source still exists (dist/ may hold stale outputs).
let files = collect('dist/test', []).filter((f) => existsSync(f.replace(/^dist[\\/]/, '').replace(/\.js$/, '.ts')));
if (filter.length) files = files.filter((f) => filter.some((s) => f.includes(s)));
if (files.length === 0) {
  // `node --test` with no paths would scan the whole tree (node_modules included).
  console.error(`no test files match ${filter.join(' ') || 'dist/test'}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
