// "Train MoRA adapter", "Cancel training", "Resume training run" and "Show training view". A run's config is
// built from built-in defaults ← settings ← mora.json ← command options (← the interactive flow), checked on the
// host before anything is written, then handed to the trainer child process.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { readModelConfig } from '../src/model/config';
import {
  expandOutPattern,
  resolveTrainConfig,
  timeStamp,
  TrainingConfigError,
  trainDefaults,
} from '../src/model/trainingConfig';
import type { TrainConfig } from '../src/protocol/trainer';
import { calledProgrammatically, toFsPath, withErrorReport } from './args';
import { configBaseDir, readMoraJson } from './moraJsonFile';
import { lastCheckpointOnDisk, runStore, type RunRecord, type RunStore } from './runStore';
import { trainWizard } from './trainFlow';
import { TrainingPanel, trainingViewType } from './trainingPanel';
import { newRunId, TrainingRun } from './trainingRun';

/** mora.trainAdapter's options: any TrainConfig field (paths as strings or Uris) plus how much UI to show. */
export type TrainOptions = Partial<Record<keyof TrainConfig, unknown>> & {
  /** Open the training view (default true). */
  showView?: boolean;
};

const pathKeys = ['model', 'data', 'out', 'resume'] as const;
const exists = (p: string) => fs.stat(p).then(() => true, () => false);

function settingsDefaults(): Partial<TrainConfig> {
  const c = vscode.workspace.getConfiguration('mora');
  return {
    method: c.get('defaultMethod') === 'lora' ? 'lora' : 'mora',
    r: c.get<number>('defaultRank', trainDefaults.r),
    moraType: c.get('defaultMoraType') === 1 ? 1 : 6,
    backend: c.get('backend', 'auto'),
  };
}

function coerceOptions(o: TrainOptions): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'showView' || v === undefined) continue;
    out[k] = (pathKeys as readonly string[]).includes(k) ? toFsPath(v) ?? v : v;
  }
  return out as Partial<TrainConfig>;
}

/** Builds and checks the run's config; undefined when the interactive flow was dismissed. */
async function buildConfig(options: TrainOptions | undefined): Promise<TrainConfig | undefined> {
  const { json, problems } = await readMoraJson();
  if (problems.length) throw new TrainingConfigError('invalid', `mora.json: ${problems.join('; ')}`, problems);
  const base = configBaseDir();
  const defaults = settingsDefaults();
  let overrides = coerceOptions(options ?? {});
  const first = { ...trainDefaults, ...defaults, ...json, ...overrides };
  if (!overrides.out && !json.out) {
    const pattern = vscode.workspace.getConfiguration('mora').get<string>('outputFolder', '${workspaceFolder}/.mora/runs/${model}-${method}-r${r}-${date}');
    const model = first.model ? path.basename(path.resolve(base, first.model)) : 'model';
    overrides.out = expandOutPattern(pattern, { workspaceFolder: base, model, method: first.method, r: first.r, date: timeStamp(new Date()) });
  }
  if (!options) {
    const draft = await trainWizard({ ...first, out: overrides.out ?? json.out });
    if (!draft) return undefined;
    overrides = { ...overrides, ...draft };
  }
  const sameModel = json.model && (!overrides.model || path.resolve(base, overrides.model) === path.resolve(base, json.model));
  if (sameModel && json.targets === undefined && overrides.targets === undefined) {
    // The Model view shows nothing ticked; training the built-in default targets instead would surprise.
    throw new TrainingConfigError('missing', 'no target modules selected: tick modules in the MoRA Model view or apply a preset');
  }
  const cfg = resolveTrainConfig(json, overrides, base, defaults);
  await readModelConfig(cfg.model); // a clear ModelConfigError now instead of a crash in the child
  if (!/^uuid:\d+$/.test(cfg.data) && !(await exists(cfg.data))) {
    throw new TrainingConfigError('invalid', `training data ${cfg.data} does not exist`);
  }
  if (!cfg.resume && (await lastCheckpointOnDisk(cfg.out) || (await exists(path.join(cfg.out, 'adapter_config.json'))))) {
    throw new TrainingConfigError('invalid', `${cfg.out} already holds a training run; resume it from the Runs view or choose another output folder`);
  }
  return cfg;
}

/** Starts a run with the whole UI: training view, status (via the store), progress notification, finish buttons. */
async function launch(ctx: vscode.ExtensionContext, store: RunStore, rec: RunRecord, showView: boolean): Promise<RunRecord> {
  if (store.active?.running) {
    throw new TrainingConfigError('invalid', `a training run is already in progress (${store.active.record.id}); cancel it first`);
  }
  const outExisted = await exists(rec.config.out);
  const maxMemoryMb = vscode.workspace.getConfiguration('mora').get<number>('maxMemoryMb', 0);
  const run = new TrainingRun(rec, store, { entry: path.join(ctx.extensionPath, 'dist', 'trainer.js'), maxMemoryMb });
  store.active = run;
  if (showView) TrainingPanel.createOrShow(ctx, store, rec.id, true);
  else TrainingPanel.current?.show(rec.id);

  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'MoRA training', cancellable: true },
    async (progress, token) => {
      token.onCancellationRequested(() => run.cancel());
      let last = 0;
      const sub = store.onDidProgress(({ run: r, point }) => {
        if (r !== run) return;
        const pct = (100 * point.step) / Math.max(1, rec.config.steps);
        progress.report({ message: `step ${point.step}/${rec.config.steps} · loss ${point.loss.toFixed(3)}`, increment: pct - last });
        last = pct;
      });
      try {
        await run.finished;
      } finally {
        sub.dispose();
      }
    },
  );

  const final = await run.finished;
  // A run that failed before writing anything leaves no empty folder behind.
  if (final.state === 'failed' && !outExisted) await fs.rmdir(final.config.out).catch(() => undefined);
  notifyEnd(store, final);
  return final;
}

function notifyEnd(store: RunStore, rec: RunRecord): void {
  const out = vscode.Uri.file(rec.config.out);
  if (rec.state === 'failed') {
    const actions = rec.lastCheckpoint ? ['Show Log', 'Resume'] : ['Show Log'];
    void vscode.window.showErrorMessage(`MoRA: training failed: ${rec.message}`, ...actions).then((a) => {
      if (a === 'Show Log') store.output.show(true);
      if (a === 'Resume') void vscode.commands.executeCommand('mora.resumeRun', rec.id);
    });
    return;
  }
  void vscode.window.showInformationMessage(`MoRA: training ${rec.message} → ${rec.config.out}`, 'Inspect spectrum', 'Merge').then((a) => {
    if (a === 'Inspect spectrum') void vscode.commands.executeCommand('mora.inspectSpectrum', out);
    if (a === 'Merge') void vscode.commands.executeCommand('mora.mergeAdapter', out, { base: rec.config.model });
  });
}

/** Resolves to the output folder; rejects (for programmatic callers) when the run failed. */
async function finish(final: RunRecord): Promise<string> {
  if (final.state === 'failed') {
    const err = new Error(final.message ?? 'training failed');
    err.name = 'TrainingFailed';
    throw err;
  }
  return final.config.out;
}

export function registerTrainCommand(ctx: vscode.ExtensionContext): vscode.Disposable {
  const store = runStore(ctx);
  return vscode.Disposable.from(
    // (options?: TrainOptions) → Promise<outDir>; no argument runs the interactive flow.
    vscode.commands.registerCommand('mora.trainAdapter', (options?: TrainOptions) =>
      withErrorReport('training', calledProgrammatically([options]), async () => {
        const cfg = await buildConfig(options);
        if (!cfg) return undefined;
        const rec: RunRecord = { id: newRunId(), config: cfg, state: 'starting', backend: '', startedAt: Date.now(), step: 0 };
        return finish(await launch(ctx, store, rec, options?.showView !== false));
      }),
    ),
    // (run?: runId | Runs view element, opts?: { steps?, showView? }) → Promise<outDir>; continues from the last checkpoint.
    vscode.commands.registerCommand('mora.resumeRun', (run?: unknown, opts?: { steps?: number; showView?: boolean }) =>
      withErrorReport('resuming the run', calledProgrammatically([run]), async () => {
        let rec = run === undefined ? undefined : store.resolve(run);
        if (run === undefined) {
          const candidates = store.list().filter((r) => r.state === 'cancelled' || r.state === 'failed');
          const pick = await vscode.window.showQuickPick(
            candidates.map((r) => ({ label: path.basename(r.config.out), description: `${r.state} at step ${r.step}`, rec: r })),
            { title: 'Resume which run?' },
          );
          rec = pick?.rec;
          if (!rec) return undefined;
        }
        if (!rec) throw new TrainingConfigError('missing', `no run ${JSON.stringify(run)} in this workspace`);
        const ckpt = await lastCheckpointOnDisk(rec.config.out);
        if (!ckpt) throw new TrainingConfigError('missing', `${rec.config.out} has no checkpoint to resume from`);
        const steps = opts?.steps ?? rec.config.steps;
        const resumed: RunRecord = { ...rec, config: { ...rec.config, steps, resume: ckpt }, state: 'starting', message: undefined, endedAt: undefined };
        return finish(await launch(ctx, store, resumed, opts?.showView !== false));
      }),
    ),
    // (run?: runId | Runs view element) → true when a live run was asked to stop.
    vscode.commands.registerCommand('mora.cancelTraining', (run?: unknown) => {
      const active = store.active;
      if (!active?.running) return false;
      if (run !== undefined && store.resolve(run)?.id !== active.record.id) return false;
      active.cancel();
      return true;
    }),
    // (run?: runId | Runs view element) → the id of the run the panel shows.
    vscode.commands.registerCommand('mora.showTrainingView', (run?: unknown) => {
      const rec = store.resolve(run);
      return TrainingPanel.createOrShow(ctx, store, rec?.id).shownRunId;
    }),
    // () → RunRecord[] (newest first), for tests and scripts.
    vscode.commands.registerCommand('mora.listRuns', () => store.list()),
    vscode.window.registerWebviewPanelSerializer(trainingViewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
        TrainingPanel.revive(panel, ctx, store, state);
      },
    }),
    { dispose: () => TrainingPanel.current?.dispose() },
  );
}
