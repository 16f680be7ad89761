// The training runs of this workspace: records persisted in workspaceState (so the Runs view survives a reload)
// and at most one live run. The Runs view, the status bar item and the training panel all listen to this store.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TrainConfig } from '../src/protocol/trainer';
import type { ProgressPoint, RunState } from '../src/protocol/training';

export interface RunRecord {
  id: string;
  config: TrainConfig;
  state: RunState;
  backend: string;
  startedAt: number;
  endedAt?: number;
  /** Last reported optimizer step. */
  step: number;
  finalLoss?: number;
  /** Newest complete checkpoint folder, for resume. */
  lastCheckpoint?: string;
  /** Outcome line: final loss, or the error and the child's last stderr lines. */
  message?: string;
}

/** What a live run exposes to the views. */
export interface LiveRun {
  readonly record: RunRecord;
  readonly points: readonly ProgressPoint[];
  readonly logs: readonly string[];
  /** True until the run has ended. */
  readonly running: boolean;
  cancel(): void;
  stop(graceMs?: number): Promise<void>;
}

const stateKey = 'mora.runs';
const maxRecords = 100;

export class RunStore implements vscode.Disposable {
  private records: RunRecord[];
  private readonly changed = new vscode.EventEmitter<RunRecord | undefined>();
  private readonly progressed = new vscode.EventEmitter<{ run: LiveRun; point: ProgressPoint }>();
  private readonly logged = new vscode.EventEmitter<{ run: LiveRun; line: string }>();
  /** A record was added, changed state or was removed (undefined: many changed). */
  readonly onDidChange = this.changed.event;
  readonly onDidProgress = this.progressed.event;
  readonly onDidLog = this.logged.event;
  active: LiveRun | undefined;
  readonly output: vscode.LogOutputChannel;

  constructor(private readonly memento: vscode.Memento) {
    this.output = vscode.window.createOutputChannel('MoRA Training', { log: true });
    // A run still marked live belonged to a window that closed or crashed: it can only be resumed now.
    this.records = (memento.get<RunRecord[]>(stateKey) ?? []).map((r) =>
      r.state === 'running' || r.state === 'starting' ? { ...r, state: 'cancelled', message: 'interrupted when VS Code closed' } : r,
    );
  }

  list(): RunRecord[] {
    return [...this.records].sort((a, b) => b.startedAt - a.startedAt);
  }

  get(id: string): RunRecord | undefined {
    return this.records.find((r) => r.id === id);
  }

  /** The run for a command argument: an id, a record, a Runs view element, or the live/latest run. */
  resolve(x: unknown): RunRecord | undefined {
    if (typeof x === 'string') return this.get(x);
    if (typeof x === 'object' && x !== null) {
      const o = x as { id?: unknown; runId?: unknown };
      const id = typeof o.runId === 'string' ? o.runId : typeof o.id === 'string' ? o.id : undefined;
      if (id) return this.get(id);
    }
    return this.active?.record ?? this.list()[0];
  }

  upsert(rec: RunRecord): void {
    const i = this.records.findIndex((r) => r.id === rec.id);
    if (i >= 0) this.records[i] = rec;
    else this.records.push(rec);
    if (this.records.length > maxRecords) this.records = this.list().slice(0, maxRecords);
    void this.memento.update(stateKey, this.records);
    this.changed.fire(rec);
  }

  remove(id: string): void {
    this.records = this.records.filter((r) => r.id !== id);
    void this.memento.update(stateKey, this.records);
    this.changed.fire(undefined);
  }

  progress(run: LiveRun, point: ProgressPoint): void {
    this.progressed.fire({ run, point });
  }

  log(run: LiveRun, line: string): void {
    this.logged.fire({ run, line });
  }

  /** Stops the live run cleanly (cancel, save, exit; killed after the grace period). */
  async stopActive(graceMs = 5000): Promise<void> {
    await this.active?.stop(graceMs);
  }

  dispose(): void {
    void this.stopActive(3000);
    this.changed.dispose();
    this.progressed.dispose();
    this.logged.dispose();
    this.output.dispose();
  }
}

/** The newest `checkpoint-<step>` folder under an output folder, found on disk (works after a crash too). */
export async function lastCheckpointOnDisk(outDir: string): Promise<string | undefined> {
  const entries = await fs.readdir(outDir, { withFileTypes: true }).catch(() => []);
  const steps = entries
    .filter((e) => e.isDirectory() && /^checkpoint-\d+$/.test(e.name))
    .map((e) => Number(e.name.slice('checkpoint-'.length)))
    .sort((a, b) => b - a);
  return steps.length ? path.join(outDir, `checkpoint-${steps[0]}`) : undefined;
}

let shared: RunStore | undefined;

/** One store per activation; the first caller creates it and registers it for disposal. */
export function runStore(ctx: vscode.ExtensionContext): RunStore {
  if (!shared) {
    const store = new RunStore(ctx.workspaceState);
    shared = store;
    ctx.subscriptions.push(store, { dispose: () => (shared = shared === store ? undefined : shared) });
  }
  return shared;
}

/** For deactivate(): stop the child process before the extension host goes away. */
export function stopAllRuns(): Promise<void> {
  return shared?.stopActive(3000) ?? Promise.resolve();
}
