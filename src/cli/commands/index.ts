// The list of subcommands. Add one import and one entry per command file.
import type { Command } from 'commander';
import { register as chat } from './chat.js';
import { register as run } from './run.js';
import { register as encode } from './encode.js';
import { register as parse } from './parse.js';
import { register as init } from './init.js';
import { register as info } from './info.js';
import { register as serve } from './serve.js';
import { register as verify } from './verify.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [chat, run, encode, parse, init, info, serve, verify];
