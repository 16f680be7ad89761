// Host side of the trainer boundary: forks the trainer child process and gives the CLI and the extension a typed
// handle (messages in, cancel/kill out, a promise for the end of the run). Used by src/cli/train.ts and extension/.
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { isTrainerToHost, type HostToTrainer, type TrainConfig, type TrainerToHost } from '../protocol/trainer';

export type TrainDone = Extract<TrainerToHost, { type: 'train/done' }>;

export class TrainerProcessError extends Error {
  override name = 'TrainerProcessError';
  constructor(
    /** 'trainer-error': the run reported train/error; 'exited': the process ended without train/done; 'spawn': it never started. */
    public kind: 'trainer-error' | 'exited' | 'spawn',
    message: string,
    /** For 'trainer-error': the error name and kind raised inside the trainer (e.g. DataError bad-line). */
    public remote?: { name: string; kind?: string; stack?: string },
  ) {
    super(message);
  }
}

export interface TrainerEntry {
  /** Script to fork. */
  entry: string;
  /** Node flags for the child (e.g. ['--import', 'tsx'] when running from sources). */
  execArgv: string[];
}

/** dist/trainer.js next to the running bundle, or src/trainer/main.ts through tsx when running from sources. */
export function defaultTrainerEntry(): TrainerEntry {
  if (__filename.endsWith('.ts')) return { entry: path.join(__dirname, 'main.ts'), execArgv: ['--import', 'tsx'] };
  return { entry: path.join(__dirname, 'trainer.js'), execArgv: [] };
}

export interface StartOptions extends Partial<TrainerEntry> {
  /** Extra environment for the child (merged over process.env). */
  env?: Record<string, string>;
}

/** A running trainer child. */
export class TrainerProcess {
  readonly child: ChildProcess;
  /** Resolves with train/done (also after a cancel); rejects with TrainerProcessError. Never left pending. */
  readonly done: Promise<TrainDone>;
  /** The last lines the child wrote to stderr, for crash reports. */
  stderrTail = '';
  private listeners: ((m: TrainerToHost) => void)[] = [];

  constructor(config: TrainConfig, opts: StartOptions = {}) {
    const def = defaultTrainerEntry();
    const entry = opts.entry ?? def.entry;
    if (!existsSync(entry)) throw new TrainerProcessError('spawn', `trainer entry ${entry} not found (run 'node esbuild.mjs' to build dist/trainer.js)`);
    this.child = fork(entry, [], {
      execArgv: opts.execArgv ?? def.execArgv,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-4000);
    });
    this.done = new Promise<TrainDone>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void) => {
        if (!settled) {
          settled = true;
          f();
        }
      };
      this.child.on('message', (m: unknown) => {
        if (!isTrainerToHost(m)) return;
        for (const l of this.listeners) l(m);
        if (m.type === 'train/done') settle(() => resolve(m));
        if (m.type === 'train/error') {
          const label = m.kind ? `${m.name} ${m.kind}` : m.name;
          settle(() => reject(new TrainerProcessError('trainer-error', `${label}: ${m.message}`, { name: m.name, kind: m.kind, stack: m.stack })));
        }
      });
      this.child.on('error', (err) => settle(() => reject(new TrainerProcessError('spawn', `cannot start the trainer: ${err.message}`))));
      this.child.on('exit', (code, signal) => {
        const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        const tail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
        settle(() => reject(new TrainerProcessError('exited', `the trainer ${why} before finishing${tail ? `: ${tail}` : ''}`)));
      });
    });
    // Callers that only use onMessage must not see an unhandled rejection.
    this.done.catch(() => undefined);
    this.send({ type: 'train/start', config });
  }

  /** Subscribes to every valid message from the trainer; returns an unsubscribe function. */
  onMessage(listener: (m: TrainerToHost) => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  private send(msg: HostToTrainer): void {
    if (this.child.connected) this.child.send(msg);
  }

  /** Asks the trainer to stop after the current step; it saves and then reports train/done with cancelled: true. */
  cancel(): void {
    this.send({ type: 'train/cancel' });
  }

  /** Ends the child at once (SIGKILL); the last complete checkpoint stays readable. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

/** Forks a trainer and starts `config`. */
export function startTrainer(config: TrainConfig, opts: StartOptions = {}): TrainerProcess {
  return new TrainerProcess(config, opts);
}
