// Strict-mode tool schemas (§6.2): the subset DeepSeek accepts, checked before generation.
import { invalidRequest } from './errors.js';

const TYPES = new Set(['object', 'string', 'number', 'integer', 'boolean', 'array', 'null']);
const FORMATS = new Set(['email', 'hostname', 'ipv4', 'ipv6', 'uuid']);
const COMMON = new Set(['type', 'description', 'title', 'enum', 'anyOf', '$ref', '$defs', 'definitions', 'const', 'default']);
const ALLOWED: Record<string, Set<string>> = {
  object: new Set(['properties', 'required', 'additionalProperties']),
  string: new Set(['pattern', 'format']),
  number: new Set(['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf']),
  integer: new Set(['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf']),
  array: new Set(['items']),
  boolean: new Set(),
  null: new Set(),
};

export function checkStrictSchema(tool: string, schema: unknown): void {
  const fail = (path: string, why: string): never => {
    throw invalidRequest(`Invalid schema for function '${tool}' in strict mode: ${path}: ${why}`);
  };
  const walk = (s: unknown, path: string): void => {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) return fail(path, 'schema must be an object');
    const o = s as Record<string, unknown>;
    for (const key of ['$defs', 'definitions'] as const) {
      const defs = o[key];
      if (defs && typeof defs === 'object') for (const [k, d] of Object.entries(defs)) walk(d, `${path}.${key}.${k}`);
    }
    if (Array.isArray(o.anyOf)) {
      o.anyOf.forEach((x, i) => walk(x, `${path}.anyOf[${i}]`));
      return;
    }
    if (typeof o.$ref === 'string' || Array.isArray(o.enum) || 'const' in o) return;
    const types = Array.isArray(o.type) ? o.type : [o.type];
    for (const t of types) {
      if (typeof t !== 'string' || !TYPES.has(t)) return fail(path, `unsupported type ${JSON.stringify(t)}`);
      for (const k of Object.keys(o)) {
        if (!COMMON.has(k) && !types.some((tt) => ALLOWED[tt as string]!.has(k))) fail(path, `keyword '${k}' is not supported`);
      }
      if (t === 'string' && o.format !== undefined && !FORMATS.has(o.format as string)) {
        fail(path, `format ${JSON.stringify(o.format)} is not supported`);
      }
      if (t === 'object') {
        const props = (o.properties ?? {}) as Record<string, unknown>;
        const req = new Set(Array.isArray(o.required) ? (o.required as string[]) : []);
        for (const p of Object.keys(props)) if (!req.has(p)) fail(path, `property '${p}' must be listed in required`);
        if (o.additionalProperties !== false) fail(path, 'additionalProperties must be false');
        for (const [p, ps] of Object.entries(props)) walk(ps, `${path}.properties.${p}`);
      }
      if (t === 'array' && o.items !== undefined) walk(o.items, `${path}.items`);
    }
  };
  walk(schema, 'parameters');
}
