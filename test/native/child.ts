// Re-runs a test file in a child process with other native settings (portable
// kernels, thread counts). The child must not inherit NODE_TEST_CONTEXT from
// this runner: with it, `node --test` in the child reports to the parent's
// channel and runs nothing, so the check would pass vacuously.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Runs `fileUrl` under `node --test` with `env` added; asserts it exits 0 having passed at least `minPass` tests. */
export function runTestFileInChild(fileUrl: string, env: Record<string, string | undefined>, minPass: number): void {
  const { NODE_TEST_CONTEXT: _, ...base } = process.env;
  const r = spawnSync(process.execPath, ['--test', fileURLToPath(fileUrl)], { env: { ...base, ...env, DSV4_TEST_CHILD: '1' }, encoding: 'utf8' });
  const what = `with ${JSON.stringify(env)}`;
  assert.equal(r.status, 0, `${what}:\n${r.stdout.split('\n').filter((l) => /not ok|fail|error/i.test(l)).join('\n')}\n${r.stderr}`);
  const pass = Number(/^# pass (\d+)/m.exec(r.stdout)?.[1] ?? 0);
  assert.ok(pass >= minPass, `${what}: the child passed ${pass} tests, expected at least ${minPass}`);
}
