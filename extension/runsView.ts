// The Runs view: this workspace's training runs (live, finished, cancelled, failed) with their output folders,
// and the per-run actions: show, resume, inspect spectrum, merge, reveal, remove from the list.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { calledProgrammatically, withErrorReport } from './args';
import { runStore, type RunRecord, type RunStore } from './runStore';

const icons: Record<RunRecord['state'], string> = {
  starting: 'loading~spin',
  running: 'sync~spin',
  done: 'pass',
  cancelled: 'circle-slash',
  failed: 'error',
};

class RunsProvider implements vscode.TreeDataProvider<RunRecord>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  constructor(private readonly store: RunStore) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  dispose(): void {
    this.changed.dispose();
  }

  getChildren(el?: RunRecord): RunRecord[] {
    return el ? [] : this.store.list();
  }

  getTreeItem(rec: RunRecord): vscode.TreeItem {
    const c = rec.config;
    const item = new vscode.TreeItem(path.basename(c.out));
    item.id = rec.id;
    const loss = rec.finalLoss !== undefined && Number.isFinite(rec.finalLoss) ? ` · loss ${rec.finalLoss.toFixed(3)}` : '';
    item.description = `${rec.state} · ${rec.step}/${c.steps}${loss}`;
    item.iconPath = new vscode.ThemeIcon(icons[rec.state]);
    const resumable = (rec.state === 'cancelled' || rec.state === 'failed') && !!rec.lastCheckpoint;
    const hasAdapter = rec.state === 'done' || rec.state === 'cancelled';
    item.contextValue = ['moraRun', rec.state, resumable ? 'resumable' : '', hasAdapter ? 'adapter' : ''].filter(Boolean).join('.');
    const md = new vscode.MarkdownString();
    md.appendMarkdown(`**${path.basename(c.out)}** — ${rec.state}${rec.backend ? ` on ${rec.backend}` : ''}\n\n`);
    md.appendMarkdown(`- model: ${c.model}\n- data: ${c.data}\n- ${c.method === 'mora' ? `MoRA type ${c.moraType}` : 'LoRA'}, r = ${c.r}\n`);
    md.appendMarkdown(`- ${c.steps} steps, lr ${c.lr}, batch ${c.batch}, seq ${c.seq}\n- output: ${c.out}\n`);
    md.appendMarkdown(`- started ${new Date(rec.startedAt).toLocaleString()}${rec.endedAt ? `, ended ${new Date(rec.endedAt).toLocaleString()}` : ''}\n`);
    if (rec.lastCheckpoint) md.appendMarkdown(`- last checkpoint: ${path.basename(rec.lastCheckpoint)}\n`);
    if (rec.message) md.appendMarkdown(`\n${rec.message}`);
    item.tooltip = md;
    item.command = { command: 'mora.showTrainingView', title: 'Show', arguments: [rec.id] };
    return item;
  }
}

export function registerRunsView(ctx: vscode.ExtensionContext): vscode.Disposable {
  const store = runStore(ctx);
  const provider = new RunsProvider(store);
  const view = vscode.window.createTreeView('mora.runs', { treeDataProvider: provider });
  const recordOf = (x: unknown): RunRecord => {
    const rec = store.resolve(x);
    if (!rec) throw new Error(`no run ${JSON.stringify(x)} in this workspace`);
    return rec;
  };
  const finished = (rec: RunRecord) => {
    if (rec.state !== 'done' && rec.state !== 'cancelled') throw new Error(`run ${rec.id} is ${rec.state}; it has no adapter to use`);
    return rec;
  };
  return vscode.Disposable.from(
    view,
    provider,
    store.onDidChange(() => provider.refresh()),
    // Each takes (run?: runId | Runs view element); without one, the live or newest run.
    vscode.commands.registerCommand('mora.inspectRun', (run?: unknown) =>
      withErrorReport('inspecting the run', calledProgrammatically([run]), async () =>
        vscode.commands.executeCommand('mora.inspectSpectrum', vscode.Uri.file(finished(recordOf(run)).config.out)),
      ),
    ),
    vscode.commands.registerCommand('mora.mergeRun', (run?: unknown) =>
      withErrorReport('merging the run', calledProgrammatically([run]), async () => {
        const rec = finished(recordOf(run));
        return vscode.commands.executeCommand('mora.mergeAdapter', vscode.Uri.file(rec.config.out), { base: rec.config.model });
      }),
    ),
    vscode.commands.registerCommand('mora.revealRun', (run?: unknown) =>
      withErrorReport('revealing the run', calledProgrammatically([run]), async () =>
        vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(recordOf(run).config.out)),
      ),
    ),
    // Forgets the run (its folder stays on disk); a live run cannot be removed.
    vscode.commands.registerCommand('mora.removeRun', (run?: unknown) =>
      withErrorReport('removing the run', calledProgrammatically([run]), async () => {
        const rec = recordOf(run);
        if (rec.state === 'running' || rec.state === 'starting') throw new Error(`run ${rec.id} is still ${rec.state}; cancel it first`);
        store.remove(rec.id);
        return rec.id;
      }),
    ),
  );
}
