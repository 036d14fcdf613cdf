// Paths of the copied golden encoding cases (test/fixtures/encoding, from shared/golden/encoding).
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

// Compiled to dist/test/tokenizer/: the repo root is three levels up.
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const ENCODING_DIR = join(ROOT, 'test/fixtures/encoding');

export interface GoldenCase {
  name: string;
  inputPath: string;
  input: string;
  /** Expected prompt (encode cases) or expected JSON text (parse and error cases). */
  expectedText?: string;
  expectedJson?: string;
}

export function goldenCases(): GoldenCase[] {
  const dir = join(ENCODING_DIR, 'cases');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.input.json'))
    .sort()
    .map((f) => {
      const name = f.replace('.input.json', '');
      const files = readdirSync(dir);
      const out: GoldenCase = { name, inputPath: join(dir, f), input: readFileSync(join(dir, f), 'utf8') };
      if (files.includes(`${name}.output.txt`)) out.expectedText = readFileSync(join(dir, `${name}.output.txt`), 'utf8');
      else out.expectedJson = readFileSync(join(dir, `${name}.expected.json`), 'utf8');
      return out;
    });
}

export function officialCases(): { n: number; inputPath: string; input: string; expected: string }[] {
  const dir = join(ENCODING_DIR, 'official');
  return [1, 2, 3, 4].map((n) => ({
    n,
    inputPath: join(dir, `test_input_${n}.json`),
    input: readFileSync(join(dir, `test_input_${n}.json`), 'utf8'),
    expected: readFileSync(join(dir, `test_output_${n}.txt`), 'utf8'),
  }));
}
