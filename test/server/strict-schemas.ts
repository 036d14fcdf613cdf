// Strict function tools shared by the strict-tool tests (spec §6.2), and a validator for their schemas.

export const weather = {
  type: 'object',
  properties: {
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    days: { type: 'integer', enum: [1, 3, 7] },
  },
  required: ['unit', 'days'],
  additionalProperties: false,
};
export const time = { type: 'object', properties: { zone: { type: 'string', enum: ['UTC', 'CET'] } }, required: ['zone'], additionalProperties: false };
export const strictTools = [
  { type: 'function' as const, function: { name: 'get_weather', strict: true, parameters: weather } },
  { type: 'function' as const, function: { name: 'get_time', strict: true, parameters: time } },
];

/** The test schemas' subset of JSON Schema: object with required enum / integer / boolean properties. */
export function validates(schema: typeof weather | typeof time, value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const o = value as Record<string, unknown>;
  if (Object.keys(o).some((k) => !(k in schema.properties))) return false;
  return schema.required.every((k) => {
    const p = (schema.properties as Record<string, { type: string; enum?: unknown[] }>)[k]!;
    const v = o[k];
    if (p.enum) return (p.enum as unknown[]).includes(v);
    if (p.type === 'integer') return Number.isInteger(v);
    return typeof v === p.type;
  });
}

/** The schema of a strict test tool by name (null for any other name). */
export function schemaOf(name: string): typeof weather | typeof time | null {
  return name === 'get_weather' ? weather : name === 'get_time' ? time : null;
}
