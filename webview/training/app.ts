// The training panel's page: header (run, model, method), stat tiles, live chart, action buttons and log tail.
// It only renders what the host sends and posts back button presses; every inbound message is validated.
import { isHostToTraining, type HostToTraining, type ProgressPoint, type RunSummary, type TrainingToHost } from '../../src/protocol/training';
import { el } from '../dom';
import { LossChart } from './chart';

interface VsCodeApi {
  postMessage(m: TrainingToHost): void;
  setState(s: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const maxLogLines = 300;

export function formatEta(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '—';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

export class TrainingApp {
  private readonly vscode = acquireVsCodeApi();
  private run: RunSummary | null = null;
  private readonly header = el('div', 'header');
  private readonly tiles = new Map<string, HTMLElement>();
  private readonly chart: LossChart;
  private readonly logs = el('pre', 'logs');
  private readonly buttons = new Map<TrainingToHost['type'], HTMLButtonElement>();

  constructor(root: HTMLElement) {
    const tileRow = el('div', 'tiles');
    for (const [key, label] of [['state', 'State'], ['step', 'Step'], ['loss', 'Loss'], ['lr', 'Learning rate'], ['tps', 'Tokens/s'], ['eta', 'ETA'], ['backend', 'Backend'], ['mem', 'Memory']]) {
      const tile = el('div', 'tile');
      const value = el('div', 'value', '—');
      tile.append(el('div', 'label', label), value);
      tileRow.append(tile);
      this.tiles.set(key, value);
    }
    const actions = el('div', 'actions');
    for (const [type, label] of [['training/cancel', 'Cancel'], ['training/inspect', 'Inspect spectrum'], ['training/merge', 'Merge'], ['training/reveal', 'Reveal folder']] as const) {
      const b = el('button', type === 'training/cancel' ? 'secondary' : '', label);
      b.addEventListener('click', () => this.run && this.vscode.postMessage({ type, runId: this.run.id }));
      actions.append(b);
      this.buttons.set(type, b);
    }
    const chartHost = el('div', 'chart');
    root.append(this.header, tileRow, chartHost, actions, el('h3', '', 'Log'), this.logs);
    this.chart = new LossChart(chartHost);
    window.addEventListener('message', (e: MessageEvent) => {
      if (isHostToTraining(e.data)) this.onMessage(e.data);
    });
    this.render();
    this.vscode.postMessage({ type: 'training/ready' });
  }

  private onMessage(m: HostToTraining): void {
    switch (m.type) {
      case 'training/init':
        this.run = m.run;
        this.vscode.setState({ runId: m.run?.id });
        this.chart.reset(m.points);
        this.logs.textContent = m.logs.join('\n');
        if (m.points.length) this.showPoint(m.points[m.points.length - 1]);
        this.render();
        return;
      case 'training/progress':
        if (!this.run) return;
        this.chart.push(m.point);
        this.run = { ...this.run, backend: m.backend, totalSteps: m.totalSteps, state: this.run.state === 'starting' ? 'running' : this.run.state };
        this.showPoint(m.point);
        return;
      case 'training/status':
        this.run = m.run;
        this.render();
        return;
      case 'training/log': {
        const lines = (this.logs.textContent ? this.logs.textContent.split('\n') : []).concat(m.line);
        this.logs.textContent = lines.slice(-maxLogLines).join('\n');
        this.logs.scrollTop = this.logs.scrollHeight;
        return;
      }
    }
  }

  private showPoint(p: ProgressPoint): void {
    const set = (k: string, v: string) => (this.tiles.get(k)!.textContent = v);
    set('step', `${p.step} / ${this.run?.totalSteps ?? '?'}`);
    set('loss', Number.isFinite(p.loss) ? p.loss.toFixed(4) : String(p.loss));
    set('lr', p.lr.toExponential(2));
    set('tps', Math.round(p.tokensPerSec).toLocaleString('en-US'));
    set('eta', formatEta(p.etaSec));
    set('mem', p.memoryMb > 0 ? `${Math.round(p.memoryMb)} MB` : '—');
    set('backend', this.run?.backend || '—');
  }

  private render(): void {
    const r = this.run;
    this.header.replaceChildren();
    if (!r) {
      this.header.append(el('h2', '', 'No training run yet'), el('p', 'muted', 'Run "MoRA: Train MoRA Adapter…" to start one.'));
    } else {
      const method = r.method === 'mora' ? `MoRA type ${r.moraType}` : 'LoRA';
      this.header.append(el('h2', '', `${basename(r.model)} · ${method} · r = ${r.r}`), el('p', 'muted', `data ${r.data} → ${r.out}`));
      if (r.message) this.header.append(el('p', r.state === 'failed' ? 'error' : 'muted', r.message));
      this.tiles.get('backend')!.textContent = r.backend || '—';
    }
    this.tiles.get('state')!.textContent = r?.state ?? '—';
    document.body.dataset.state = r?.state ?? 'none';
    const live = r?.state === 'running' || r?.state === 'starting';
    const finished = r?.state === 'done' || r?.state === 'cancelled';
    this.buttons.get('training/cancel')!.disabled = !live;
    this.buttons.get('training/inspect')!.disabled = !finished;
    this.buttons.get('training/merge')!.disabled = !finished;
    this.buttons.get('training/reveal')!.disabled = !r;
  }
}

function basename(p: string): string {
  return p.split(/[\\/]/).filter(Boolean).pop() ?? p;
}
