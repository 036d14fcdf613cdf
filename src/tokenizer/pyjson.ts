// Python-faithful JSON and str(): the reference encoder (spec §6.2) builds
// prompts with Python's json.dumps / json.loads and str.format, so a byte-exact
// port needs their exact number, escape and key-order behaviour.
//
// Value model ("PyValue"): null (None), boolean, string, number (an integral
// number is a Python int, any other a float), bigint (int), PyFloat (a float
// that happens to be integral, e.g. 3.0 from JSON text), arrays (list), and
// dicts as Map (insertion order kept, even for integer-like keys) or plain objects.

/** A Python float whose value is integral (JS numbers cannot tell 3.0 from 3). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export type PyDict = Map<string, unknown> | Record<string, unknown>;

/** Python exception kinds the reference can raise; `kind` is the class name. */
export class PyError extends Error {
  constructor(readonly kind: string, message: string) {
    super(message);
    this.name = kind;
  }
}

export function isDict(v: unknown): v is PyDict {
  if (v instanceof Map) return true;
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof PyFloat);
}

/** dict.get(key) (undefined when absent). */
export function dget(d: unknown, key: string): unknown {
  if (d instanceof Map) return d.get(key);
  if (isDict(d)) return Object.prototype.hasOwnProperty.call(d, key) ? (d as Record<string, unknown>)[key] : undefined;
  // Python would raise AttributeError on .get of a non-dict.
  throw new PyError('AttributeError', `'${pyTypeName(d)}' object has no attribute 'get'`);
}

/** dict[key] (KeyError when absent, TypeError on non-dicts). */
export function dindex(d: unknown, key: string): unknown {
  if (!isDict(d)) throw new PyError('TypeError', `'${pyTypeName(d)}' object is not subscriptable`);
  const v = dget(d, key);
  if (v === undefined) throw new PyError('KeyError', `'${key}'`);
  return v;
}

export function dhas(d: unknown, key: string): boolean {
  return dget(d, key) !== undefined;
}

export function dentries(d: PyDict): [string, unknown][] {
  return d instanceof Map ? [...d.entries()] : Object.entries(d);
}

export function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (v instanceof PyFloat) return 'float';
  if (Array.isArray(v)) return 'list';
  return 'dict';
}

/** Python truthiness. */
export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === '' || v === 0 || v === 0n) return false;
  if (v instanceof PyFloat) return v.value !== 0;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  if (isDict(v)) return Object.keys(v).length > 0;
  return true;
}

/** Python deep copy of a JSON-like value (dict order kept). */
export function deepCopy<T>(v: T): T {
  if (Array.isArray(v)) return v.map(deepCopy) as T;
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, deepCopy(x)])) as T;
  if (isDict(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = deepCopy(x);
    return out as T;
  }
  return v;
}

// ---------------------------------------------------------------- floats

/** float.__repr__: shortest round-trip digits, exponent form outside [1e-4, 1e16). */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = x.toExponential().split('e');
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  const sign = neg ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

function intText(v: number | bigint): string {
  if (typeof v === 'bigint') return v.toString();
  return Number.isSafeInteger(v) ? String(v === 0 ? 0 : v) : BigInt(v).toString();
}

// ---------------------------------------------------------------- dumps

const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

/** json.dumps(s, ensure_ascii=False) for a string. */
export function dumpString(s: string): string {
  // eslint-disable-next-line no-control-regex
  return '"' + s.replace(/[\x00-\x1f"\\]/g, (c) => ESCAPES[c] ?? '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) + '"';
}

function dumpFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  return floatRepr(x);
}

/** json.dumps(v, ensure_ascii=False) with Python's default separators. */
export function dumps(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'string') return dumpString(v);
  if (typeof v === 'bigint') return intText(v);
  if (typeof v === 'number') return Number.isInteger(v) ? intText(v) : dumpFloat(v);
  if (v instanceof PyFloat) return dumpFloat(v.value);
  if (Array.isArray(v)) return '[' + v.map(dumps).join(', ') + ']';
  if (isDict(v)) return '{' + dentries(v).map(([k, x]) => dumpString(k) + ': ' + dumps(x)).join(', ') + '}';
  throw new PyError('TypeError', `Object of type ${typeof v} is not JSON serializable`);
}

// ---------------------------------------------------------------- str / repr

function reprString(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else if (c >= 0x80 && c < 0xa0) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + quote;
}

/** repr(v) for JSON-like values. */
export function pyRepr(v: unknown): string {
  if (typeof v === 'string') return reprString(v);
  if (Array.isArray(v)) return '[' + v.map(pyRepr).join(', ') + ']';
  if (isDict(v)) return '{' + dentries(v).map(([k, x]) => reprString(k) + ': ' + pyRepr(x)).join(', ') + '}';
  return pyStr(v);
}

/** str(v): what str.format inserts. */
export function pyStr(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'bigint') return intText(v);
  if (typeof v === 'number') return Number.isInteger(v) ? intText(v) : floatRepr(v);
  if (v instanceof PyFloat) return floatRepr(v.value);
  return pyRepr(v);
}

// ---------------------------------------------------------------- loads

const WS = new Set([' ', '\t', '\n', '\r']);

/** json.loads(text): dicts as Map, floats kept as floats (PyFloat when integral), big ints as bigint.
 *  Errors are PyError('JSONDecodeError') (a ValueError in Python). */
export function loads(text: string): unknown {
  let i = 0;
  const fail = (msg: string): never => {
    throw new PyError('JSONDecodeError', `${msg}: char ${i}`);
  };
  const skip = () => {
    while (i < text.length && WS.has(text[i])) i++;
  };
  const value = (): unknown => {
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = new Map<string, unknown>();
      skip();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail('Expecting property name enclosed in double quotes');
        const k = str();
        skip();
        if (text[i] !== ':') fail("Expecting ':' delimiter");
        i++;
        obj.set(k, value());
        skip();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return obj;
        } else fail("Expecting ',' delimiter");
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      skip();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        skip();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return arr;
        } else fail("Expecting ',' delimiter");
      }
    }
    if (c === '"') return str();
    for (const [lit, v] of [['null', null], ['true', true], ['false', false], ['NaN', new PyFloat(NaN)], ['Infinity', new PyFloat(Infinity)], ['-Infinity', new PyFloat(-Infinity)]] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    const m = /^(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?/.exec(text.slice(i, i + 4096));
    if (!m) return fail('Expecting value');
    i += m[0].length;
    if (m[2] === undefined && m[3] === undefined) {
      const n = Number(m[1]);
      return Number.isSafeInteger(n) ? (n === 0 ? 0 : n) : BigInt(m[1]);
    }
    const f = Number(m[0]);
    return Number.isInteger(f) || !Number.isFinite(f) ? new PyFloat(f) : f;
  };
  const str = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('Unterminated string starting at');
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('Invalid \\uXXXX escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
          continue;
        }
        const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (!(e in map)) fail('Invalid \\escape');
        out += map[e];
        i += 2;
        continue;
      }
      if (c.charCodeAt(0) < 0x20) fail('Invalid control character at');
      out += c;
      i++;
    }
  };
  const v = value();
  skip();
  if (i !== text.length) fail('Extra data');
  return v;
}

/** json.dumps(v, indent=2, ensure_ascii=False): the goldens' expected.json layout. */
export function dumpsIndented(v: unknown, indent = 2, level = 0): string {
  const pad = ' '.repeat(indent * (level + 1));
  const end = ' '.repeat(indent * level);
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return '[\n' + v.map((x) => pad + dumpsIndented(x, indent, level + 1)).join(',\n') + '\n' + end + ']';
  }
  if (isDict(v) && !(v instanceof PyFloat)) {
    const entries = dentries(v);
    if (!entries.length) return '{}';
    return '{\n' + entries.map(([k, x]) => pad + dumpString(k) + ': ' + dumpsIndented(x, indent, level + 1)).join(',\n') + '\n' + end + '}';
  }
  return dumps(v);
}
