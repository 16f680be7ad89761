// uPlot charts: σ of one module on a log scale, and an overlay of several modules. The legend shows the values
// under the cursor (hover).
import uPlot from 'uplot';
import type { ModuleSpectrumView } from '../../src/protocol/spectrum';
import { cssVar, seriesColors } from './format';

/** σ as a chart series: index i+1 → σ_i; zeros (not drawable on a log axis) become gaps. */
function series(m: ModuleSpectrumView, length: number): (number | null)[] {
  return Array.from({ length }, (_, i) => (m.sigma[i] !== undefined && m.sigma[i] > 0 ? m.sigma[i] : null));
}

export interface Chart {
  root: HTMLElement;
  canvas(): HTMLCanvasElement | null;
  destroy(): void;
}

/** A log-scale σ chart of one or more modules, labelled by `labels`. */
export function sigmaChart(host: HTMLElement, mods: ModuleSpectrumView[], labels: string[], title: string): Chart {
  if (!mods.some((m) => m.sigma.some((s) => s > 0))) {
    // A log axis cannot show an all-zero spectrum (e.g. a freshly initialised MoRA adapter, M = 0).
    const note = document.createElement('div');
    note.className = 'empty';
    note.textContent = `${title}: ΔW = 0, every singular value is zero`;
    host.append(note);
    return { root: note, canvas: () => null, destroy: () => note.remove() };
  }
  const length = Math.max(1, ...mods.map((m) => m.sigma.length));
  const x = Array.from({ length }, (_, i) => i + 1);
  const fg = cssVar('--vscode-foreground', '#ccc');
  const grid = cssVar('--vscode-editorWidget-border', '#454545');
  const colors = seriesColors();
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const width = Math.max(320, host.clientWidth || 600);
  const plot = new uPlot(
    {
      title,
      width,
      height: 320,
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [
        { ...axis, label: 'index i' },
        { ...axis, label: 'σ_i (log)', size: 70, values: (_u, vals) => vals.map((v) => (v == null ? '' : v.toExponential(0))) },
      ],
      series: [
        { label: 'i' },
        ...mods.map((_, k) => ({
          label: labels[k],
          stroke: colors[k % colors.length],
          width: 1.5,
          points: { show: length <= 64 },
          value: (_u: uPlot, v: number | null) => (v == null ? '—' : v.toPrecision(5)),
        })),
      ],
      legend: { live: true },
    },
    [x, ...mods.map((m) => series(m, length))] as uPlot.AlignedData,
    host,
  );
  return { root: plot.root, canvas: () => plot.ctx.canvas, destroy: () => plot.destroy() };
}
