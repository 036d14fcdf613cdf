// The list of subcommands. Add one import and one entry per command file.
import type { Command } from 'commander';
import { register as encode } from './encode.js';
import { register as parse } from './parse.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [encode, parse];
