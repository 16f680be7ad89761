// "MoRA: Inspect ΔW Spectrum": a webview panel with the singular values of every adapted layer, one adapter or two
// side by side. Analyses run in a child process (dist/spectrumWorker.js) with progress and cancel; the panel survives
// reloads through a WebviewPanelSerializer (its state names the adapters, so it re-runs them).
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as vscode from 'vscode';
import { webviewHtml, webviewRoots } from './webviewHtml';
import {
  isSpectrumPanelState, isSpectrumToHost, slotHasBase, type HostToSpectrum, type Slot, type SlotStatus,
  type SpectrumPanelState, type SpectrumReportView, type SpectrumToHost,
} from '../src/protocol/spectrum';
import { toFsPath, withErrorReport, calledProgrammatically } from './args';
import { saveSpectrumCsv, saveSpectrumPng } from './spectrumExport';
import { runSpectrumWorker, WorkerCancelled } from './spectrumWorkerClient';

const VIEW_TYPE = 'mora.spectrum';

/** A file inside an adapter folder (adapter_config.json, adapter_model.safetensors) stands for its folder. */
async function adapterDirOf(p: string): Promise<string> {
  const st = await fs.stat(p);
  return st.isDirectory() ? p : path.dirname(p);
}

export class SpectrumPanel {
  static current: SpectrumPanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private reports: (SpectrumReportView | null)[] = [];
  private status: SlotStatus[] = [];
  private readonly cancels = new Map<Slot, vscode.CancellationTokenSource>();
  private readonly results = new Map<Slot, Promise<SpectrumReportView | undefined>>();

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly extensionUri: vscode.Uri,
    private state: SpectrumPanelState,
  ) {
    panel.webview.options = SpectrumPanel.webviewOptions(extensionUri);
    panel.webview.html = this.html();
    panel.onDidDispose(() => this.dispose(), null, this.disposables);
    panel.webview.onDidReceiveMessage(
      (m: unknown) =>
        this.onMessage(m).catch((err: Error) => void vscode.window.showErrorMessage(`MoRA: spectrum panel: ${err.name}: ${err.message}`)),
      null,
      this.disposables,
    );
    this.analyzeAll();
  }

  static webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
    return {
      enableScripts: true,
      localResourceRoots: webviewRoots(extensionUri),
    };
  }

  /**
   * Shows the panel for `adapters` (one, or two to compare), reusing the open one. Resolves with slot 0's report.
   * The view and the intruders toggle carry over from the open panel unless `intruders` says otherwise.
   */
  static createOrShow(extensionUri: vscode.Uri, adapters: string[], bases: string[] = [], intruders?: boolean): Promise<SpectrumReportView | undefined> {
    const state: SpectrumPanelState = {
      adapters,
      bases: adapters.map((_, i) => bases[i] ?? ''),
      view: SpectrumPanel.current?.state.view ?? 'spectrum',
      overlay: [],
      selected: null,
      intruders: intruders ?? SpectrumPanel.current?.state.intruders ?? false,
    };
    if (SpectrumPanel.current) {
      try {
        SpectrumPanel.current.panel.reveal();
        SpectrumPanel.current.setState(state);
        return SpectrumPanel.current.results.get(0) ?? Promise.resolve(undefined);
      } catch {
        // The user closed the panel and its dispose event has not arrived yet: drop it and open a new one.
        SpectrumPanel.current.dispose();
      }
    }
    const panel = vscode.window.createWebviewPanel(VIEW_TYPE, 'ΔW Spectrum', vscode.ViewColumn.Active, {
      ...SpectrumPanel.webviewOptions(extensionUri),
      retainContextWhenHidden: false,
    });
    SpectrumPanel.current = new SpectrumPanel(panel, extensionUri, state);
    return SpectrumPanel.current.results.get(0) ?? Promise.resolve(undefined);
  }

  /** Rebuilds a panel VS Code restored after a reload; a state that does not validate closes it. */
  static revive(panel: vscode.WebviewPanel, extensionUri: vscode.Uri, state: unknown): void {
    if (!isSpectrumPanelState(state)) {
      panel.dispose();
      return;
    }
    SpectrumPanel.current?.dispose();
    SpectrumPanel.current = new SpectrumPanel(panel, extensionUri, state);
  }

  private setState(state: SpectrumPanelState): void {
    this.cancelAll();
    this.state = state;
    this.analyzeAll();
    this.sendInit();
  }

  private analyzeAll(): void {
    this.reports = this.state.adapters.map(() => null);
    this.status = this.state.adapters.map(() => ({ state: 'idle' }));
    this.state.adapters.forEach((_, i) => this.start(i as Slot));
  }

  /** (Re)starts one slot's analysis; a run still going for that slot is cancelled and its result dropped. */
  private start(slot: Slot): void {
    this.cancels.get(slot)?.cancel();
    this.reports[slot] = null;
    this.status[slot] = { state: 'idle' };
    const p = this.analyze(slot);
    p.catch(() => undefined); // reported in the panel; only a command caller awaits the rejection
    this.results.set(slot, p);
  }

  /**
   * Turns intruder dimensions on or off and re-runs the slots whose result depends on it: those with a base, and
   * those still running (whose base may come from base_model_name_or_path). A finished slot without a base stays.
   */
  private setIntruders(enabled: boolean): void {
    if (!!this.state.intruders === enabled) return;
    this.state = { ...this.state, intruders: enabled };
    this.state.adapters.forEach((_, i) => {
      const s = this.status[i]?.state;
      if (slotHasBase(this.state, this.reports, i as Slot) || s === 'running' || s === 'idle') this.start(i as Slot);
    });
    this.sendInit();
  }

  private post(m: HostToSpectrum): void {
    void this.panel.webview.postMessage(m);
  }

  private sendInit(): void {
    this.post({ type: 'spectrum/init', reports: this.reports, status: this.status, state: this.state });
  }

  private async analyze(slot: Slot): Promise<SpectrumReportView | undefined> {
    const adapter = this.state.adapters[slot];
    const base = this.state.bases[slot] || undefined;
    const cts = new vscode.CancellationTokenSource();
    this.cancels.set(slot, cts);
    const script = vscode.Uri.joinPath(this.extensionUri, 'dist', 'spectrumWorker.js').fsPath;
    const setStatus = (status: SlotStatus): void => {
      this.status[slot] = status;
      this.post({ type: 'spectrum/status', slot, status });
    };
    try {
      const report = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `ΔW spectrum of ${path.basename(adapter)}`, cancellable: true },
        async (progress, token) => {
          token.onCancellationRequested(() => cts.cancel());
          let last = 0;
          return runSpectrumWorker(script, { adapter, base, intruders: !!this.state.intruders }, cts.token, (p) => {
            progress.report({ message: `${p.done}/${p.total} ${p.module}`, increment: ((p.done - last) / p.total) * 100 });
            last = p.done;
            this.status[slot] = { state: 'running', ...p };
            this.post({ type: 'spectrum/progress', slot, ...p });
          });
        },
      );
      if (this.cancels.get(slot) !== cts) return undefined; // superseded by a newer request
      this.reports[slot] = report;
      this.status[slot] = { state: 'done' };
      this.post({ type: 'spectrum/result', slot, report });
      return report;
    } catch (err) {
      if (this.cancels.get(slot) !== cts) return undefined;
      if (err instanceof WorkerCancelled) {
        setStatus({ state: 'cancelled' });
        return undefined;
      }
      const e = err as Error & { kind?: string };
      if (e.kind === 'BaseShapesUnknown' && !base) {
        // MoRA's M does not record in/out sizes: ask for the base model once, then retry.
        const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, openLabel: 'Use as base model (for layer sizes)' });
        if (picked?.[0]) {
          this.state.bases[slot] = picked[0].fsPath;
          this.sendInit();
          return this.analyze(slot);
        }
      }
      setStatus({ state: 'failed', message: `${e.name}${e.kind ? ` ${e.kind}` : ''}: ${e.message}` });
      throw err;
    } finally {
      if (this.cancels.get(slot) === cts) this.cancels.delete(slot);
      cts.dispose();
    }
  }

  private cancelAll(): void {
    for (const c of this.cancels.values()) c.cancel();
    this.cancels.clear();
    this.results.clear();
  }

  private async onMessage(raw: unknown): Promise<void> {
    if (!isSpectrumToHost(raw)) {
      console.warn(`mora spectrum: dropped malformed webview message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const m: SpectrumToHost = raw;
    switch (m.type) {
      case 'spectrum/ready':
        return this.sendInit();
      case 'spectrum/cancel':
        for (const c of this.cancels.values()) c.cancel();
        return;
      case 'spectrum/state':
        // The webview may change what it shows, never which folders are analyzed or how (spectrum/intruders does).
        this.state = { ...m.state, adapters: this.state.adapters, bases: this.state.bases, intruders: this.state.intruders };
        return;
      case 'spectrum/intruders':
        return this.setIntruders(m.enabled);
      case 'spectrum/compare': {
        const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Compare with this adapter' });
        if (picked?.[0]) this.setState({ ...this.state, adapters: [this.state.adapters[0], picked[0].fsPath], bases: [this.state.bases[0], ''] });
        return;
      }
      case 'spectrum/exportCsv':
        return saveSpectrumCsv(this.state.adapters[0], this.reports);
      case 'spectrum/exportPng':
        return saveSpectrumPng(this.state.adapters[0], m.name, m.dataUrl);
    }
  }

  private html(): string {
    return webviewHtml(this.panel.webview, this.extensionUri, { name: 'spectrum', title: 'ΔW Spectrum' });
  }

  dispose(): void {
    if (SpectrumPanel.current === this) SpectrumPanel.current = undefined;
    for (const c of this.cancels.values()) c.cancel();
    this.cancels.clear();
    this.panel.dispose();
    while (this.disposables.length) this.disposables.pop()?.dispose();
  }
}

/** Registers mora.inspectSpectrum, mora.compareSpectra and the panel serializer. */
export function registerSpectrumPanel(ctx: vscode.ExtensionContext): vscode.Disposable {
  const uri = ctx.extensionUri;
  const pickFolder = async (label: string): Promise<string | undefined> =>
    (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: label }))?.[0]?.fsPath;
  const baseOf = (x: unknown): string[] => {
    const b = typeof x === 'object' && x !== null ? toFsPath((x as { base?: unknown }).base) : undefined;
    return b ? [b] : [];
  };
  const intrudersOf = (x: unknown): boolean | undefined => {
    const v = typeof x === 'object' && x !== null ? (x as { intruders?: unknown }).intruders : undefined;
    return typeof v === 'boolean' ? v : undefined;
  };
  return vscode.Disposable.from(
    // (uri | path, { base?, intruders? }) from menus and tests; no argument from the palette.
    vscode.commands.registerCommand('mora.inspectSpectrum', (target?: unknown, opts?: unknown) =>
      withErrorReport('spectrum', calledProgrammatically([target]), async () => {
        const p = toFsPath(target) ?? (await pickFolder('Inspect this adapter'));
        if (!p) return undefined;
        return SpectrumPanel.createOrShow(uri, [await adapterDirOf(p)], baseOf(opts), intrudersOf(opts));
      }),
    ),
    // (clicked, selected[]) from a multi-selection in the Explorer, or (a, b) from tests.
    vscode.commands.registerCommand('mora.compareSpectra', (a?: unknown, b?: unknown) =>
      withErrorReport('spectrum comparison', calledProgrammatically([a, b]), async () => {
        const fromList = Array.isArray(b) ? b.map(toFsPath).filter((x): x is string => !!x) : [];
        let dirs = fromList.length >= 2 ? fromList.slice(0, 2) : [toFsPath(a), toFsPath(b)].filter((x): x is string => !!x);
        if (dirs.length < 1) dirs = [(await pickFolder('First adapter')) ?? ''].filter(Boolean);
        if (dirs.length === 1) dirs.push((await pickFolder('Second adapter')) ?? '');
        if (dirs.length < 2 || dirs.some((d) => !d)) return undefined;
        return SpectrumPanel.createOrShow(uri, await Promise.all(dirs.map(adapterDirOf)));
      }),
    ),
    vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
        SpectrumPanel.revive(panel, uri, state);
      },
    }),
    { dispose: () => SpectrumPanel.current?.dispose() },
  );
}
