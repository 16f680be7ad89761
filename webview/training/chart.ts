// The live curves: raw loss, an EMA-smoothed loss (left axis) and the learning rate (right axis) against the step.
// Points arrive up to 4 per second; redraws are batched into one per animation frame.
import uPlot from 'uplot';
import type { ProgressPoint } from '../../src/protocol/training';

const emaBeta = 0.9; // smoothing of the loss curve; the first points are bias-corrected as in Adam

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

export class LossChart {
  private readonly plot: uPlot;
  private readonly steps: number[] = [];
  private readonly loss: (number | null)[] = [];
  private readonly smooth: (number | null)[] = [];
  private readonly lr: number[] = [];
  private ema = 0;
  private emaN = 0;
  private pending = false;
  private readonly resize: ResizeObserver;

  constructor(private readonly host: HTMLElement) {
    const fg = cssVar('--vscode-foreground', '#ccc');
    const grid = cssVar('--vscode-editorWidget-border', '#454545');
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    this.plot = new uPlot(
      {
        width: Math.max(320, host.clientWidth || 640),
        height: 300,
        scales: { x: { time: false }, lr: { auto: true } },
        axes: [
          // Steps are whole numbers: integer tick increments only.
          { ...axis, label: 'step', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000] },
          { ...axis, label: 'loss', size: 60 },
          { ...axis, scale: 'lr', side: 1, label: 'lr', size: 70, grid: { show: false }, values: (_u, v) => v.map((x) => (x == null ? '' : x.toExponential(1))) },
        ],
        series: [
          { label: 'step' },
          { label: 'loss', stroke: cssVar('--vscode-charts-blue', '#3794ff'), width: 1, alpha: 0.45, value: (_u, v) => (v == null ? '—' : v.toFixed(4)) },
          { label: 'loss (EMA)', stroke: cssVar('--vscode-charts-blue', '#3794ff'), width: 2, value: (_u, v) => (v == null ? '—' : v.toFixed(4)) },
          { label: 'lr', scale: 'lr', stroke: cssVar('--vscode-charts-orange', '#d18616'), width: 1.5, dash: [4, 4], value: (_u, v) => (v == null ? '—' : v.toExponential(2)) },
        ],
        legend: { live: true },
      },
      [[], [], [], []],
      host,
    );
    this.resize = new ResizeObserver(() => this.plot.setSize({ width: Math.max(320, host.clientWidth), height: 300 }));
    this.resize.observe(host);
  }

  /** Replaces every point (snapshot after load or a run switch). */
  reset(points: readonly ProgressPoint[]): void {
    this.steps.length = this.loss.length = this.smooth.length = this.lr.length = 0;
    this.ema = 0;
    this.emaN = 0;
    for (const p of points) this.push(p, false);
    this.redraw();
  }

  push(p: ProgressPoint, redraw = true): void {
    // A resumed run replays steps it already showed; drop the stale tail.
    while (this.steps.length && this.steps[this.steps.length - 1] >= p.step) {
      this.steps.pop();
      this.loss.pop();
      this.smooth.pop();
      this.lr.pop();
    }
    const ok = Number.isFinite(p.loss);
    if (ok) {
      this.ema = emaBeta * this.ema + (1 - emaBeta) * p.loss;
      this.emaN++;
    }
    this.steps.push(p.step);
    this.loss.push(ok ? p.loss : null);
    this.smooth.push(this.emaN ? this.ema / (1 - emaBeta ** this.emaN) : null);
    this.lr.push(p.lr);
    if (redraw) this.redraw();
  }

  private redraw(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.plot.setData([this.steps, this.loss, this.smooth, this.lr] as uPlot.AlignedData);
    });
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot.destroy();
    this.host.replaceChildren();
  }
}
