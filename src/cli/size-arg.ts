// Commander argument parser for byte sizes ("512M", "20G", plain bytes), binary multiples as in checkpoint/size.ts.
import { InvalidArgumentError } from 'commander';
import { parseSize } from '../checkpoint/size.js';

export function sizeArg(v: string): number {
  const n = parseSize(v);
  if (n === null) throw new InvalidArgumentError('expected a size such as 512M or 20G');
  return n;
}
