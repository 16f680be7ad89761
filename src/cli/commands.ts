import * as path from 'node:path';
import type { Command, LazyCommand } from './command';
import { makeTinyModelCommand } from './makeTinyModel';
import { inspectCommand } from './inspect';
import { mergeCommand } from './merge';
import { extractCommand } from './extract';
import { spectrumCommand } from './spectrum';
import { trainCommand } from './train';
import { treeCommand } from './tree';

/**
 * modelCommands.ts, loaded on first use: dist/cliModel.js next to the bundle, or the source through tsx's require
 * hook (tests). The path is computed so that esbuild leaves the module out of cli.js.
 */
function modelCommands(): typeof import('./modelCommands') {
  const file = __filename.endsWith('.ts') ? path.join(__dirname, 'modelCommands.ts') : path.join(__dirname, 'cliModel.js');
  return require(file) as typeof import('./modelCommands');
}

// Every subcommand, in the order `mora --help` lists them. Add one import and one entry per new command; a command
// that imports TensorFlow.js goes into modelCommands.ts and is listed here lazily (name and summary, checked against
// the module by a test).
export const commands: (Command | LazyCommand)[] = [
  makeTinyModelCommand,
  inspectCommand,
  treeCommand,
  mergeCommand,
  extractCommand,
  spectrumCommand,
  trainCommand,
  {
    name: 'eval-uuid',
    summary: 'Score an adapter on the UUID memorization task (character-level accuracy)',
    load: async () => modelCommands().evalUuidCommand,
  },
  {
    name: 'demo',
    summary: 'Tiny end-to-end demo: MoRA vs LoRA at equal parameters on UUID memorization',
    load: async () => modelCommands().demoCommand,
  },
];
