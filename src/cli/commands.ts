import type { Command } from './command';

// Every subcommand, in the order `mora --help` lists them. Add one import and one entry per new command.
export const commands: Command[] = [];
