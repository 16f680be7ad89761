import type { Command } from './command';
import { makeTinyModelCommand } from './makeTinyModel';
import { inspectCommand } from './inspect';
import { mergeCommand } from './merge';
import { extractCommand } from './extract';
import { spectrumCommand } from './spectrum';
import { trainCommand } from './train';
import { evalUuidCommand } from './evalUuid';
import { demoCommand } from './demo';
import { treeCommand } from './tree';

// Every subcommand, in the order `mora --help` lists them. Add one import and one entry per new command.
export const commands: Command[] = [
  makeTinyModelCommand,
  inspectCommand,
  treeCommand,
  mergeCommand,
  extractCommand,
  spectrumCommand,
  trainCommand,
  evalUuidCommand,
  demoCommand,
];
