// The child side of a one-job worker process (dist/spectrumWorker.js, dist/extractWorker.js): wait for one start
// message, run the job, answer, leave. A cancel message aborts the job, which stops between its steps; the host going
// away ends the process.

/** Sends a message to the parent; resolves once the channel has taken it (at once when there is no parent). */
export function sendToParent(m: unknown): Promise<void> {
  return new Promise((resolve) => (process.send ? process.send(m as object, undefined, {}, () => resolve()) : resolve()));
}

/** `f` at most once per `ms` (4 a second by default), and always for the last step (done === total). */
export function throttled<P extends { done: number; total: number }>(f: (p: P) => void, ms = 250): (p: P) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < ms && p.done < p.total) return;
    last = now;
    f(p);
  };
}

export interface OneJob<M extends { type: string }> {
  /** Validates an inbound message. */
  isInbound(m: unknown): m is M;
  /** The inbound message type that cancels. */
  cancel: M['type'];
  /** Runs the job a (valid, non-cancel) start message asks for; it answers the host itself. */
  run(start: M, signal: AbortSignal): Promise<void>;
  /** Answers a message that failed validation but claims to start a job, so the host is not left waiting. */
  refuse?(m: unknown): Promise<void> | undefined;
}

/** Serves exactly one job over the IPC channel, then disconnects. */
export function serveOneJob<M extends { type: string }>(job: OneJob<M>): void {
  const ac = new AbortController();
  let started = false;
  process.on('message', (m: unknown) => {
    if (!job.isInbound(m)) {
      const answered = started ? undefined : job.refuse?.(m);
      if (answered) {
        started = true;
        void answered.then(() => process.disconnect?.());
      }
      return;
    }
    if (m.type === job.cancel) {
      ac.abort();
      if (!started) process.exit(0);
      return;
    }
    if (started) return;
    started = true;
    void job.run(m, ac.signal).then(() => process.disconnect?.());
  });
  process.on('disconnect', () => process.exit(0));
}
