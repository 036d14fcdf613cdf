// Field readers that fail the way DeepSeek's (serde) deserializer does (§2.3, §11.1):
// "Failed to deserialize the JSON body into the target type: <path>: <serde text> at line L column C".
// Unknown top-level fields are ignored; enum values are strict.
import { deserializeError, invalidRequest } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json | undefined };

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (Array.isArray(v)) return 'sequence';
  return 'map';
}

/** Reads fields of one JSON object, producing errors with the dotted path serde would print. */
export class Reader {
  constructor(
    readonly obj: Obj,
    readonly path: string,
    private readonly column: number,
  ) {}

  static root(body: unknown, column: number): Reader {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw deserializeError('', `invalid type: ${describe(body)}, expected struct`, column);
    }
    return new Reader(body as Obj, '', column);
  }

  private at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  fail(key: string, detail: string): never {
    throw deserializeError(this.at(key), detail, this.column);
  }

  typeError(key: string, v: unknown, expected: string): never {
    this.fail(key, `invalid type: ${describe(v)}, expected ${expected}`);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  required(key: string): Json {
    const v = this.obj[key];
    if (v === undefined) throw deserializeError(this.path, `missing field \`${key}\``, this.column);
    return v;
  }

  string(key: string, required = false): string | undefined {
    const v = required ? this.required(key) : this.obj[key];
    if (v === undefined || (v === null && !required)) return undefined;
    if (typeof v !== 'string') this.typeError(key, v, 'a string');
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.typeError(key, v, 'a boolean');
    return v;
  }

  number(key: string): number | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number') this.typeError(key, v, 'f32');
    return v;
  }

  integer(key: string, expected = 'u32'): number | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.typeError(key, v, expected);
    if (v < 0 && expected.startsWith('u')) this.fail(key, `invalid value: integer \`${v}\`, expected ${expected}`);
    return v;
  }

  enumOf<T extends string>(key: string, values: readonly T[]): T | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.typeError(key, v, `one of ${values.map((x) => `\`${x}\``).join(', ')}`);
    if (!values.includes(v as T)) this.fail(key, unknownVariant(v, values));
    return v as T;
  }

  object(key: string, required = false): Reader | undefined {
    const v = required ? this.required(key) : this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.typeError(key, v, 'struct');
    return new Reader(v as Obj, this.at(key), this.column);
  }

  array(key: string, required = false): Json[] | undefined {
    const v = required ? this.required(key) : this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.typeError(key, v, 'a sequence');
    return v;
  }

  /** Reader for element i of an array field (path like messages[3]). */
  element(key: string, i: number, v: Json): Reader {
    const p = `${this.at(key)}[${i}]`;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw deserializeError(p, `invalid type: ${describe(v)}, expected struct`, this.column);
    }
    return new Reader(v as Obj, p, this.column);
  }

  /** String or array of strings (stop), at most `max` entries. */
  stringList(key: string, max: number): string[] {
    const v = this.obj[key];
    if (v === undefined || v === null) return [];
    const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : this.typeError(key, v, 'a string or a sequence');
    for (const s of list) if (typeof s !== 'string') this.typeError(key, s, 'a string');
    if (list.length > max) throw invalidRequest(`Invalid ${key}: at most ${max} sequences are allowed`);
    return list as string[];
  }
}

export function unknownVariant(v: string, values: readonly string[]): string {
  const q = values.map((x) => `\`${x}\``);
  const expected = q.length === 1 ? q[0] : q.length === 2 ? `${q[0]} or ${q[1]}` : `one of ${q.join(', ')}`;
  return `unknown variant \`${v}\`, expected ${expected}`;
}

export function checkRange(name: string, v: number | undefined, lo: number, hi: number): void {
  if (v === undefined) return;
  if (!(v >= lo && v <= hi)) throw invalidRequest(`Invalid ${name} value, the valid range of ${name} is [${lo}, ${hi}]`);
}
