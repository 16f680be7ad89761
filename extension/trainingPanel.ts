// The training webview: live loss/lr curves, throughput, ETA and backend of one run, with Cancel, Inspect
// spectrum, Merge and Reveal buttons. One panel at a time; it follows the newest run unless pinned to another.
import * as vscode from 'vscode';
import { webviewHtml, webviewRoots } from './webviewHtml';
import { isTrainingToHost, type HostToTraining, type TrainingToHost } from '../src/protocol/training';
import type { RunStore } from './runStore';
import { runSummary } from './trainingRun';

export const trainingViewType = 'mora.training';

export class TrainingPanel {
  static current: TrainingPanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private runId: string | undefined;

  /** Shows the panel (creating it if needed) on `runId`, or on the live/latest run. */
  static createOrShow(ctx: vscode.ExtensionContext, store: RunStore, runId?: string, preserveFocus = false): TrainingPanel {
    if (TrainingPanel.current) {
      TrainingPanel.current.show(runId ?? store.resolve(undefined)?.id);
      TrainingPanel.current.panel.reveal(undefined, preserveFocus);
      return TrainingPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(
      trainingViewType,
      'MoRA Training',
      { viewColumn: vscode.ViewColumn.Active, preserveFocus },
      { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: webviewRoots(ctx.extensionUri) },
    );
    TrainingPanel.current = new TrainingPanel(panel, ctx, store, runId ?? store.resolve(undefined)?.id);
    return TrainingPanel.current;
  }

  /** Restores a panel left open by the previous session (state: { runId } saved by the webview). */
  static revive(panel: vscode.WebviewPanel, ctx: vscode.ExtensionContext, store: RunStore, state: unknown): TrainingPanel {
    const saved = typeof state === 'object' && state !== null ? (state as { runId?: unknown }).runId : undefined;
    const runId = typeof saved === 'string' && store.get(saved) ? saved : store.resolve(undefined)?.id;
    TrainingPanel.current?.dispose();
    TrainingPanel.current = new TrainingPanel(panel, ctx, store, runId);
    return TrainingPanel.current;
  }

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly ctx: vscode.ExtensionContext,
    private readonly store: RunStore,
    runId: string | undefined,
  ) {
    this.runId = runId;
    panel.webview.options = { enableScripts: true, localResourceRoots: webviewRoots(ctx.extensionUri) };
    panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'mora.svg');
    panel.webview.html = this.html();
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((m: unknown) => {
        if (isTrainingToHost(m)) void this.onMessage(m);
      }),
      store.onDidProgress(({ run, point }) => {
        if (run.record.id === this.runId) this.post({ type: 'training/progress', point, totalSteps: run.record.config.steps, backend: run.record.backend });
      }),
      store.onDidLog(({ run, line }) => {
        if (run.record.id === this.runId) this.post({ type: 'training/log', line });
      }),
      store.onDidChange((rec) => {
        if (rec && rec.id === this.runId) this.post({ type: 'training/status', run: runSummary(rec) });
      }),
    );
  }

  /** Switches the panel to another run and sends its snapshot. */
  show(runId: string | undefined): void {
    if (runId === this.runId) return;
    this.runId = runId;
    this.sendSnapshot();
  }

  get shownRunId(): string | undefined {
    return this.runId;
  }

  private sendSnapshot(): void {
    const rec = this.runId ? this.store.get(this.runId) : undefined;
    const live = this.store.active && this.store.active.record.id === this.runId ? this.store.active : undefined;
    this.post({ type: 'training/init', run: rec ? runSummary(rec) : null, points: [...(live?.points ?? [])], logs: [...(live?.logs ?? [])] });
  }

  private post(m: HostToTraining): void {
    void this.panel.webview.postMessage(m);
  }

  private async onMessage(m: TrainingToHost): Promise<void> {
    if (m.type === 'training/ready') return this.sendSnapshot();
    const rec = this.store.get(m.runId);
    if (!rec) return;
    const out = vscode.Uri.file(rec.config.out);
    try {
      switch (m.type) {
        case 'training/cancel':
          if (this.store.active?.record.id === rec.id) this.store.active.cancel();
          return;
        case 'training/inspect':
          await vscode.commands.executeCommand('mora.inspectSpectrum', out);
          return;
        case 'training/merge':
          await vscode.commands.executeCommand('mora.mergeAdapter', out, { base: rec.config.model });
          return;
        case 'training/reveal':
          await vscode.commands.executeCommand('revealFileInOS', out);
          return;
      }
    } catch {
      // The command already showed its own error message.
    }
  }

  private html(): string {
    return webviewHtml(this.panel.webview, this.ctx.extensionUri, {
      name: 'training',
      title: 'MoRA Training',
      appAttributes: { 'run-id': this.runId ?? '' },
    });
  }

  dispose(): void {
    if (TrainingPanel.current === this) TrainingPanel.current = undefined;
    this.panel.dispose();
    while (this.disposables.length) this.disposables.pop()?.dispose();
  }
}

