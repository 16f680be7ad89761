// What the long CLI commands (merge, extract) share: progress lines on stderr and Ctrl-C as a clean cancel.

/** Progress lines on stderr, at most 4 a second on a terminal (rewritten in place) and 1 a second otherwise. */
export function progressPrinter<P extends { done: number; total: number }>(line: (p: P) => string): { update(p: P): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  const interval = tty ? 250 : 1000;
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = Date.now();
      if (now - last < interval && p.done < p.total) return;
      last = now;
      shown = true;
      process.stderr.write(tty ? `\r\x1b[K${line(p)}` : `${line(p)}\n`);
    },
    end() {
      if (tty && shown) process.stderr.write('\n');
    },
  };
}

/**
 * Runs `job` with Ctrl-C wired to its AbortSignal (the job removes its temp output and the CLI exits 2) and, unless
 * `quiet`, progress lines made by `line`.
 */
export async function runAbortable<P extends { done: number; total: number }, T>(
  quiet: boolean | undefined,
  line: (p: P) => string,
  job: (signal: AbortSignal, onProgress?: (p: P) => void) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  const progress = quiet ? undefined : progressPrinter(line);
  try {
    return await job(ac.signal, progress?.update);
  } finally {
    progress?.end();
    process.off('SIGINT', onSigint);
  }
}
