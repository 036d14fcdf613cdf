// safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the data; offsets
// are relative to the end of the header. Tensors are read lazily by positional
// reads of exactly their byte range (spec §5: checkpoints of 160-865 GB must
// never be read whole).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { adviseHugePages } from '../tensor/native.js';
import { CheckpointError } from './errors.js';
import type { DType, TensorData } from './types.js';

/** Bytes per element of each stored dtype (FP4 experts are stored as I8, two values per byte). */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  F32: 4,
  BF16: 2,
  F16: 2,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I8: 1,
  U8: 1,
  I32: 4,
  I64: 8,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensorByteLength(dtype: DType, shape: readonly number[]): number {
  return elementCount(shape) * DTYPE_BYTES[dtype];
}

/** Where one tensor lies in its file. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute byte offset of the first data byte in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** Headers beyond this are refused as corrupt (real V4 shards have headers of ~100 KB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** readSync moves at most 2 GiB - 1 per call. */
const READ_CHUNK = 1 << 30;

function readExactly(fd: number, buf: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, Math.min(READ_CHUNK, buf.length - done), position + done);
    if (n === 0) throw new CheckpointError(`file is truncated (wanted ${buf.length} bytes at ${position})`, file, tensor);
    done += n;
  }
}

/** Parses and checks the JSON header; every structural problem becomes a CheckpointError naming the file/tensor. */
export function parseHeader(json: string, dataStart: number, fileSize: number, file: string): {
  entries: Map<string, TensorEntry>;
  metadata: Record<string, string>;
} {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    throw new CheckpointError(`corrupt safetensors header (invalid JSON: ${(e as Error).message})`, file);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new CheckpointError('corrupt safetensors header (not a JSON object)', file);
  }
  const entries = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  const dataSize = fileSize - dataStart;
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v !== null && typeof v === 'object') metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object') throw new CheckpointError('corrupt header entry', file, name);
    if (!isDType(e.dtype)) throw new CheckpointError(`unsupported dtype ${JSON.stringify(e.dtype)}`, file, name);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError(`corrupt shape ${JSON.stringify(shape)}`, file, name);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0]) {
      throw new CheckpointError(`corrupt data_offsets ${JSON.stringify(off)}`, file, name);
    }
    const byteLength = tensorByteLength(e.dtype, shape as number[]);
    if (off[1] - off[0] !== byteLength) {
      throw new CheckpointError(
        `data_offsets [${off[0]}, ${off[1]}] span ${off[1] - off[0]} bytes but ${e.dtype} ${JSON.stringify(shape)} needs ${byteLength}`,
        file,
        name,
      );
    }
    if (off[1] > dataSize) {
      throw new CheckpointError(
        `data_offsets [${off[0]}, ${off[1]}] out of range: the file holds ${dataSize} data bytes (truncated file?)`,
        file,
        name,
      );
    }
    entries.set(name, { name, dtype: e.dtype, shape: shape as number[], offset: dataStart + off[0], byteLength });
  }
  // Tensors must not share bytes (a corrupt or hand-edited header could make two names alias).
  const spans = [...entries.values()].filter((e) => e.byteLength > 0).sort((x, y) => x.offset - y.offset);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    if (spans[i]!.offset < prev.offset + prev.byteLength) {
      throw new CheckpointError(`data_offsets overlap those of '${prev.name}'`, file, spans[i]!.name);
    }
  }
  return { entries, metadata };
}

/** One open safetensors file: header parsed eagerly, data read on demand. */
export class SafetensorsFile {
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fileSize: number;
  private fd: number | null;

  private constructor(readonly path: string, fd: number, fileSize: number, entries: Map<string, TensorEntry>, metadata: Record<string, string>) {
    this.fd = fd;
    this.fileSize = fileSize;
    this.entries = entries;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new CheckpointError(`cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, path);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new CheckpointError(`corrupt safetensors file (${size} bytes, shorter than the 8-byte header length)`, path);
      const lenBuf = Buffer.alloc(8);
      readExactly(fd, lenBuf, 0, path);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
        throw new CheckpointError(`corrupt safetensors header (header length ${n} exceeds the file size ${size})`, path);
      }
      const hdr = Buffer.alloc(Number(n));
      readExactly(fd, hdr, 8, path);
      const { entries, metadata } = parseHeader(hdr.toString('utf8'), 8 + Number(n), size, path);
      return new SafetensorsFile(path, fd, size, entries, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError('no such tensor in this file', this.path, name);
    return e;
  }

  /**
   * Reads the tensor's bytes into `alloc(byteLength)` (its view must start at a multiple of 8 bytes in its buffer,
   * so typed views of any width fit), by default a fresh buffer of its own (offset 0).
   */
  read(name: string, alloc?: (byteLength: number) => Uint8Array): TensorData {
    const e = this.entry(name);
    let bytes: Uint8Array;
    if (alloc) bytes = alloc(e.byteLength);
    else {
      bytes = new Uint8Array(Buffer.allocUnsafeSlow(e.byteLength).buffer, 0, e.byteLength);
      adviseHugePages(bytes);
    }
    this.readRange(e, bytes);
    return { name, dtype: e.dtype, shape: e.shape, bytes };
  }

  /** Reads the tensor's bytes into `dst` (length must equal the tensor's byte length). */
  readRange(e: TensorEntry, dst: Uint8Array): void {
    if (this.fd === null) throw new CheckpointError('file already closed', this.path, e.name);
    if (dst.length !== e.byteLength) throw new CheckpointError(`destination holds ${dst.length} bytes, tensor has ${e.byteLength}`, this.path, e.name);
    readExactly(this.fd, dst, e.offset, this.path, e.name);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The header bytes (length prefix + space-padded JSON) for tensors laid out back to back in the given order. */
export function encodeHeader(
  tensors: readonly { name: string; dtype: DType; shape: readonly number[] }[],
  metadata: Record<string, string> = { format: 'pt' },
): { header: Buffer; dataBytes: number } {
  const obj: Record<string, unknown> = { __metadata__: metadata };
  let pos = 0;
  for (const t of tensors) {
    const len = tensorByteLength(t.dtype, t.shape);
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + len] };
    pos += len;
  }
  let json = JSON.stringify(obj);
  // Pad to a multiple of 8 so the data start is 8-byte aligned (as the reference writer does).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const header = Buffer.alloc(8 + body.length);
  header.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(header, 8);
  return { header, dataBytes: pos };
}
