// The spectrum panel's UI: toolbar, view switcher and the four views, one column per adapter in compare mode.
import {
  isHostToSpectrum, slotHasBase, type HostToSpectrum, type Slot, type SlotStatus, type SpectrumPanelState, type SpectrumReportView, type SpectrumToHost,
} from '../../src/protocol/spectrum';
import { sigmaChart, type Chart } from './charts';
import { heatmap } from './heatmap';
import { metricsTable } from './table';
import { el, findModule, layers, moduleTypes, shortName, tk } from './format';

interface VsCodeApi {
  postMessage(m: SpectrumToHost): void;
  setState(s: SpectrumPanelState): void;
  getState(): unknown;
}
declare function acquireVsCodeApi(): VsCodeApi;

const VIEWS: [SpectrumPanelState['view'], string][] = [['spectrum', 'Spectrum'], ['overlay', 'Overlay'], ['heatmap', 'Heat map'], ['table', 'Table']];

export class App {
  private readonly api = acquireVsCodeApi();
  private state: SpectrumPanelState | null = null;
  private reports: (SpectrumReportView | null)[] = [];
  private status: SlotStatus[] = [];
  private charts: Chart[] = [];
  private canvases: HTMLCanvasElement[] = [];
  private overlayType = '';

  constructor(private readonly root: HTMLElement) {
    window.addEventListener('message', (ev: MessageEvent) => this.onMessage(ev.data));
    this.api.postMessage({ type: 'spectrum/ready' });
  }

  private onMessage(m: unknown): void {
    if (!isHostToSpectrum(m)) return;
    const msg: HostToSpectrum = m;
    switch (msg.type) {
      case 'spectrum/init':
        this.state = msg.state;
        this.reports = msg.reports;
        this.status = msg.status;
        this.saveState();
        return this.render();
      case 'spectrum/progress':
        this.status[msg.slot] = { state: 'running', done: msg.done, total: msg.total, module: msg.module };
        return this.renderToolbar();
      case 'spectrum/result':
        this.reports[msg.slot] = msg.report;
        this.status[msg.slot] = { state: 'done' };
        return this.render();
      case 'spectrum/status':
        this.status[msg.slot] = msg.status;
        return this.render();
    }
  }

  private saveState(): void {
    if (!this.state) return;
    this.api.setState(this.state);
    this.api.postMessage({ type: 'spectrum/state', state: this.state });
  }

  private toolbar = el('div', 'toolbar');
  private body = el('div', 'body');

  private render(): void {
    if (!this.state) return;
    for (const c of this.charts) c.destroy();
    this.charts = [];
    this.canvases = [];
    this.root.replaceChildren(this.toolbar, this.body);
    this.renderToolbar();
    this.body.replaceChildren();
    const done = this.reports.filter((r): r is SpectrumReportView => r !== null);
    if (done.length === 0) return;
    const view = this.state.view;
    if (view === 'table') return metricsTable(this.body, done);
    const controls = el('div', 'controls');
    const columns = el('div', this.state.adapters.length > 1 ? 'columns compare' : 'columns');
    this.body.append(controls, columns);
    if (view === 'spectrum') this.renderSpectrum(controls, columns, done[0]);
    else if (view === 'overlay') this.renderOverlay(controls, columns, done[0]);
    else {
      const vmax = Math.max(...done.flatMap((r) => r.modules.map((m) => m.metrics.effectiveRank)));
      for (const r of this.slotsWithReports()) this.canvases.push(heatmap(this.column(columns), r, vmax, shortName(r.adapter)));
    }
  }

  private slotsWithReports(): SpectrumReportView[] {
    return this.reports.filter((r): r is SpectrumReportView => r !== null);
  }

  private column(columns: HTMLElement): HTMLElement {
    const c = el('div', 'column');
    columns.append(c);
    return c;
  }

  private renderToolbar(): void {
    if (!this.state) return;
    const bar = this.toolbar;
    bar.replaceChildren();
    const tabs = el('div', 'tabs');
    tabs.setAttribute('role', 'tablist');
    for (const [id, label] of VIEWS) {
      const b = tk('vscode-button', label);
      b.setAttribute('appearance', this.state.view === id ? 'primary' : 'secondary');
      b.setAttribute('role', 'tab');
      b.setAttribute('aria-selected', String(this.state.view === id));
      b.addEventListener('click', () => {
        this.state!.view = id;
        this.saveState();
        this.render();
      });
      tabs.append(b);
    }
    const actions = el('div', 'actions');
    const button = (label: string, f: () => void, appearance = 'secondary'): void => {
      const b = tk('vscode-button', label);
      b.setAttribute('appearance', appearance);
      b.addEventListener('click', f);
      actions.append(b);
    };
    const running = this.status.some((s) => s.state === 'running' || s.state === 'idle');
    if (running) button('Cancel', () => this.api.postMessage({ type: 'spectrum/cancel' }));
    button('Compare…', () => this.api.postMessage({ type: 'spectrum/compare' }));
    actions.append(this.intrudersToggle());
    button('Export CSV', () => this.api.postMessage({ type: 'spectrum/exportCsv' }));
    if (this.state.view !== 'table') button('Export PNG', () => this.exportPng());
    const status = el('div', 'status');
    this.state.adapters.forEach((a, i) => {
      const s = this.status[i] ?? { state: 'idle' };
      const line = el('div', `slot-status ${s.state}`);
      const text =
        s.state === 'running' ? `${s.done}/${s.total} ${s.module}` : s.state === 'failed' ? `failed: ${s.message}` : s.state === 'idle' ? 'starting…' : s.state;
      if (s.state === 'running' || s.state === 'idle') line.append(tk('vscode-progress-ring'));
      line.append(el('span', undefined, `${shortName(a)}: ${text}`));
      status.append(line);
    });
    bar.append(tabs, actions, status);
  }

  /**
   * Opt-in intruder dimensions: the host re-runs the slots with a base model and answers with spectrum/init, which
   * is what moves the state here. Disabled while no slot has a base, since they compare W + ΔW against W.
   */
  private intrudersToggle(): HTMLElement {
    const st = this.state!;
    const cb = tk('vscode-checkbox', 'Intruders');
    cb.classList.add('intruders-toggle');
    const available = st.adapters.some((_, i) => slotHasBase(st, this.reports, i as Slot));
    cb.title = available
      ? 'Intruder dimensions (Shuttleworth et al. 2024): top singular vectors of W + ΔW unlike any of the base weight\'s top ones. Re-runs the analysis.'
      : 'Intruder dimensions need the base model folder';
    if (st.intruders) cb.setAttribute('checked', '');
    if (!available) cb.setAttribute('disabled', '');
    cb.addEventListener('change', () => {
      // Read the control rather than flipping the state, so a change event from the initial render is a no-op.
      const enabled = (cb as unknown as { checked: boolean }).checked;
      if (enabled !== !!st.intruders) this.api.postMessage({ type: 'spectrum/intruders', enabled });
    });
    return cb;
  }

  private renderSpectrum(controls: HTMLElement, columns: HTMLElement, first: SpectrumReportView): void {
    const st = this.state!;
    const selected = st.selected && first.modules.some((m) => m.path === st.selected) ? st.selected : first.modules[0]?.path;
    const dd = tk('vscode-dropdown');
    dd.setAttribute('aria-label', 'module');
    for (const m of first.modules) {
      const o = tk('vscode-option', m.path);
      o.setAttribute('value', m.path);
      if (m.path === selected) o.setAttribute('selected', '');
      dd.append(o);
    }
    dd.addEventListener('change', () => {
      st.selected = (dd as unknown as { value: string }).value;
      this.saveState();
      this.render();
    });
    controls.append(el('label', undefined, 'Module '), dd);
    const sel = first.modules.find((m) => m.path === selected);
    for (const r of this.slotsWithReports()) {
      const m = (sel && (r.modules.find((x) => x.path === sel.path) ?? findModule(r, sel.layer, sel.moduleType))) || r.modules[0];
      if (!m) continue;
      const title = `${shortName(r.adapter)} — ${m.path} (${m.rows}×${m.cols}, ${m.method})`;
      this.addChart(sigmaChart(this.column(columns), [m], ['σ'], title));
    }
  }

  private renderOverlay(controls: HTMLElement, columns: HTMLElement, first: SpectrumReportView): void {
    const st = this.state!;
    const types = moduleTypes(first);
    if (!types.includes(this.overlayType)) this.overlayType = types[0] ?? '';
    const dd = tk('vscode-dropdown');
    for (const t of types) {
      const o = tk('vscode-option', t);
      o.setAttribute('value', t);
      if (t === this.overlayType) o.setAttribute('selected', '');
      dd.append(o);
    }
    dd.addEventListener('change', () => {
      this.overlayType = (dd as unknown as { value: string }).value;
      this.render();
    });
    const ls = layers(first);
    const chosen = new Set(st.overlay.length ? st.overlay : ls.slice(0, 4).map(String));
    const boxes = el('div', 'layers');
    for (const l of ls) {
      const cb = tk('vscode-checkbox', l === null ? '—' : String(l));
      if (chosen.has(String(l))) cb.setAttribute('checked', '');
      cb.addEventListener('change', () => {
        if (chosen.has(String(l))) chosen.delete(String(l));
        else chosen.add(String(l));
        st.overlay = [...chosen];
        this.saveState();
        this.render();
      });
      boxes.append(cb);
    }
    controls.append(el('label', undefined, 'Module type '), dd, el('span', 'hint', ' layers: '), boxes);
    for (const r of this.slotsWithReports()) {
      const picked = ls.filter((l) => chosen.has(String(l))).map((l) => findModule(r, l, this.overlayType)).filter((m) => m !== undefined);
      if (picked.length === 0) continue;
      const labels = picked.map((m) => `layer ${m!.layer ?? '—'}`);
      this.addChart(sigmaChart(this.column(columns), picked as never[], labels, `${shortName(r.adapter)} — ${this.overlayType}`));
    }
  }

  private addChart(c: Chart): void {
    this.charts.push(c);
    const cv = c.canvas();
    if (cv) this.canvases.push(cv);
  }

  /** Draws the visible charts side by side on one canvas and hands the PNG to the host to save. */
  private exportPng(): void {
    if (this.canvases.length === 0) return;
    const w = this.canvases.reduce((s, c) => s + c.width, 0);
    const h = Math.max(...this.canvases.map((c) => c.height));
    const out = el('canvas');
    out.width = w;
    out.height = h;
    const ctx = out.getContext('2d')!;
    ctx.fillStyle = getComputedStyle(document.body).getPropertyValue('--vscode-editor-background') || '#1e1e1e';
    ctx.fillRect(0, 0, w, h);
    let x = 0;
    for (const c of this.canvases) {
      ctx.drawImage(c, x, 0);
      x += c.width;
    }
    this.api.postMessage({ type: 'spectrum/exportPng', name: `spectrum-${this.state?.view ?? 'view'}`, dataUrl: out.toDataURL('image/png') });
  }
}
