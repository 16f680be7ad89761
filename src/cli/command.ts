import { parseArgs, type ParseArgsConfig } from 'node:util';

/** One `mora <name>` subcommand. Each lives in its own file under src/cli and is listed in commands.ts. */
export interface Command {
  name: string;
  /** One line for `mora --help`. */
  summary: string;
  /** Full usage text for `mora <name> --help`. */
  usage: string;
  /** Returns the process exit code (0 when omitted). */
  run(argv: string[]): Promise<number | void>;
}

/**
 * A command listed by name and summary but loaded only when it runs (or prints its usage): the commands that
 * evaluate a model import TensorFlow.js, whose initialisation would otherwise add ≈ 150 ms to every `mora` call.
 */
export interface LazyCommand {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

/** The command itself, loading it first when it is lazy. */
export async function resolveCommand(entry: Command | LazyCommand): Promise<Command> {
  return 'load' in entry ? entry.load() : entry;
}

/** Bad command-line input: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Strict flag parsing: unknown flags and stray positionals become a UsageError instead of a stack trace. */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
}

/** Reads a required string flag. */
export function requireFlag(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing required flag --${name}`);
  return v;
}

/** Parses a numeric flag, with an optional default and integer/range checks. */
export function numberFlag(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n)) {
    throw new UsageError(`--${name} expects a number, got '${String(raw)}'`);
  }
  if (opts.integer && !Number.isInteger(n)) throw new UsageError(`--${name} expects an integer, got '${raw}'`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`--${name} must be >= ${opts.min}, got ${n}`);
  if (opts.max !== undefined && n > opts.max) throw new UsageError(`--${name} must be <= ${opts.max}, got ${n}`);
  return n;
}
