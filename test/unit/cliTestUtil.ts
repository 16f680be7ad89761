// Shared by the CLI tests: run `mora …` in-process and capture what it prints, and the message of a thrown error.
import { main } from '../../src/cli/main';

/** Runs the CLI in-process with stdout and stderr captured; returns the exit code and both texts. */
export async function runCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const [ow, ew] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

/** The message `f` throws, or 'no error'. */
export function message(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  return 'no error';
}
