// Minimal NumPy .npy (v1/v2/v3, little-endian, C order) reader for the golden arrays.
import { readFileSync } from 'node:fs';

export type NpyData = Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array | Int8Array | Int16Array | Uint32Array | BigInt64Array;

export interface NpyArray {
  dtype: string;
  shape: number[];
  data: NpyData;
}

const CTORS: Record<string, new (b: ArrayBuffer) => NpyData> = {
  '<f4': Float32Array, '<f8': Float64Array, '<i4': Int32Array, '<u2': Uint16Array, '|u1': Uint8Array, '|i1': Int8Array,
  '<i2': Int16Array, '<u4': Uint32Array, '<i8': BigInt64Array,
};

export function parseNpy(buf: Uint8Array, name = 'array'): NpyArray {
  const magic = String.fromCharCode(...buf.subarray(0, 6));
  if (magic !== '\x93NUMPY') throw new Error(`${name}: not a .npy file`);
  const major = buf[6]!;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(buf.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || fortran === undefined || shapeText === undefined) throw new Error(`${name}: malformed .npy header`);
  if (fortran === 'True') throw new Error(`${name}: Fortran-order arrays are not supported`);
  const ctor = CTORS[descr];
  if (!ctor) throw new Error(`${name}: unsupported dtype ${descr}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const start = hstart + hlen;
  const body = Uint8Array.prototype.slice.call(buf, start).buffer as ArrayBuffer;
  const data = new ctor(body);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`${name}: ${data.length} elements, shape ${JSON.stringify(shape)} needs ${n}`);
  return { dtype: descr, shape, data };
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path), path);
}
