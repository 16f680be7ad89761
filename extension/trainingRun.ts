// One live training run: forks the trainer (src/trainer/runner.ts), turns its messages into record updates,
// curve points and Output channel lines, and always settles `finished` with the final record.
import * as path from 'node:path';
import { TrainerProcess, TrainerProcessError } from '../src/trainer/runner';
import type { TrainConfig, TrainerToHost } from '../src/protocol/trainer';
import type { ProgressPoint, RunSummary } from '../src/protocol/training';
import { lastCheckpointOnDisk, type LiveRun, type RunRecord, type RunStore } from './runStore';

export interface TrainingRunOptions {
  /** dist/trainer.js of this extension. */
  entry: string;
  /** Heap limit of the child in MB; 0 keeps Node's default. */
  maxMemoryMb: number;
}

const maxPoints = 20000; // a curve this long is already denser than the panel's pixels
const maxLogs = 500;
const progressLogEveryMs = 2000; // progress lines in the Output channel, not every message

export function newRunId(): string {
  return `run-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

export class TrainingRun implements LiveRun {
  readonly points: ProgressPoint[] = [];
  readonly logs: string[] = [];
  readonly finished: Promise<RunRecord>;
  private readonly proc: TrainerProcess;
  private lastProgressLog = 0;
  private ended = false;

  constructor(
    public record: RunRecord,
    private readonly store: RunStore,
    opts: TrainingRunOptions,
  ) {
    const execArgv = opts.maxMemoryMb > 0 ? [`--max-old-space-size=${Math.floor(opts.maxMemoryMb)}`] : [];
    this.line('info', `start ${record.id}: ${describeConfig(record.config)}`);
    // The extension host may run on Electron; ELECTRON_RUN_AS_NODE makes the forked binary plain Node.
    this.proc = new TrainerProcess(record.config, { entry: opts.entry, execArgv, env: { ELECTRON_RUN_AS_NODE: '1' } });
    this.proc.onMessage((m) => this.onMessage(m));
    this.finished = this.proc.done.then(
      (done) =>
        this.end({
          state: done.cancelled ? 'cancelled' : 'done',
          step: done.steps,
          finalLoss: done.finalLoss,
          message: `${done.cancelled ? 'cancelled' : 'finished'} at step ${done.steps}, loss ${fmt(done.finalLoss)}`,
        }),
      (err: unknown) => {
        const e = err as Error;
        if (err instanceof TrainerProcessError && err.kind === 'exited' && this.proc.stderrTail.trim()) {
          this.line('error', `trainer stderr (last lines):\n${this.proc.stderrTail.trim().split('\n').slice(-20).join('\n')}`);
        }
        return this.end({ state: 'failed', message: `${e.name}${(e as { kind?: string }).kind ? ` ${(e as { kind?: string }).kind}` : ''}: ${e.message}` });
      },
    );
    this.update({ state: 'starting' });
  }

  private update(patch: Partial<RunRecord>): void {
    this.record = { ...this.record, ...patch };
    this.store.upsert(this.record);
  }

  private async end(patch: Partial<RunRecord>): Promise<RunRecord> {
    this.ended = true;
    // A crash may leave checkpoints the trainer never announced; the disk is the truth for resume.
    const onDisk = await lastCheckpointOnDisk(this.record.config.out);
    this.update({ ...patch, endedAt: Date.now(), lastCheckpoint: onDisk ?? this.record.lastCheckpoint });
    this.line(patch.state === 'failed' ? 'error' : 'info', `${this.record.id} ${patch.message ?? patch.state}`);
    // The child exits by itself after train/done; make sure it does.
    setTimeout(() => this.proc.kill(), 5000).unref?.();
    return this.record;
  }

  private line(level: 'info' | 'warn' | 'error', text: string): void {
    try {
      this.store.output[level](text);
    } catch {
      // The channel is gone when the window closes while the child is still saving; the record still updates.
    }
    const stamped = `${new Date().toLocaleTimeString()} ${level === 'info' ? '' : `[${level}] `}${text}`;
    this.logs.push(stamped);
    if (this.logs.length > maxLogs) this.logs.shift();
    this.store.log(this, stamped);
  }

  private onMessage(m: TrainerToHost): void {
    switch (m.type) {
      case 'train/ready':
        this.update({ state: 'running', backend: m.backend });
        this.line('info', `backend ${m.backend}`);
        for (const n of m.notes) this.line('info', `  ${n}`);
        return;
      case 'train/progress': {
        const point: ProgressPoint = { step: m.step, loss: m.loss, lr: m.lr, tokensPerSec: m.tokensPerSec, etaSec: m.etaSec, memoryMb: m.memoryMb };
        this.points.push(point);
        if (this.points.length > maxPoints) this.points.splice(0, this.points.length - maxPoints);
        this.record = { ...this.record, step: m.step, backend: m.backend || this.record.backend };
        this.store.progress(this, point);
        const now = Date.now();
        if (now - this.lastProgressLog >= progressLogEveryMs || m.step === m.totalSteps) {
          this.lastProgressLog = now;
          this.line('info', `step ${m.step}/${m.totalSteps} loss ${fmt(m.loss)} lr ${m.lr.toExponential(2)} ${Math.round(m.tokensPerSec)} tok/s eta ${Math.round(m.etaSec)}s`);
        }
        return;
      }
      case 'train/log':
        this.line(m.level, m.message);
        return;
      case 'train/checkpoint':
        this.update({ lastCheckpoint: m.dir, step: m.step });
        this.line('info', `checkpoint ${path.basename(m.dir)} saved`);
        return;
      default:
        return; // train/done and train/error settle `finished` through the runner's promise
    }
  }

  cancel(): void {
    this.line('info', 'cancel requested; the trainer saves after the current step');
    this.proc.cancel();
  }

  /** Clean stop for window close: cancel, wait for the save, kill after the grace period. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.proc.running) return;
    if (this.ended) return this.proc.kill();
    this.proc.cancel();
    const timer = new Promise((r) => setTimeout(r, graceMs));
    await Promise.race([this.finished, timer]);
    this.proc.kill();
  }

  /** True until the run has ended (done, cancelled or failed); the child may take a moment longer to exit. */
  get running(): boolean {
    return !this.ended;
  }
}

export function runSummary(rec: RunRecord): RunSummary {
  const c = rec.config;
  return {
    id: rec.id,
    model: c.model,
    data: c.data,
    method: c.method,
    moraType: c.moraType,
    r: c.r,
    totalSteps: c.steps,
    out: c.out,
    backend: rec.backend,
    state: rec.state,
    message: rec.message,
  };
}

export function describeConfig(c: TrainConfig): string {
  const method = c.method === 'mora' ? `MoRA type ${c.moraType}` : 'LoRA';
  const targets = typeof c.targets === 'string' ? c.targets : c.targets.join(',');
  return `${path.basename(c.model)} · ${method} r=${c.r} · targets ${targets} · ${c.steps} steps lr ${c.lr} batch ${c.batch} seq ${c.seq} · data ${c.data} → ${c.out}${c.resume ? ` (resume ${c.resume})` : ''}`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}
