// Heat map of effective rank by layer (rows) × module type (columns), drawn on a canvas so it can be exported as PNG.
import type { SpectrumReportView } from '../../src/protocol/spectrum';
import { cssVar, el, findModule, fmt, layers, moduleTypes } from './format';

const CELL_W = 72;
const CELL_H = 14;
const LEFT = 44;
const TOP = 22;

/** Blue (low) → yellow (high), readable on dark and light themes. */
function color(t: number): string {
  const h = 230 - 180 * Math.max(0, Math.min(1, t));
  return `hsl(${h}, 70%, ${35 + 20 * t}%)`;
}

export function heatmap(host: HTMLElement, report: SpectrumReportView, vmax: number, title: string): HTMLCanvasElement {
  const types = moduleTypes(report);
  const ls = layers(report);
  const canvas = el('canvas', 'heatmap');
  const ratio = window.devicePixelRatio || 1;
  const w = LEFT + types.length * CELL_W + 8;
  const h = TOP + ls.length * CELL_H + 28;
  canvas.width = w * ratio;
  canvas.height = h * ratio;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext('2d')!;
  ctx.scale(ratio, ratio);
  const fg = cssVar('--vscode-foreground', '#ccc');
  ctx.fillStyle = cssVar('--vscode-editor-background', '#1e1e1e');
  ctx.fillRect(0, 0, w, h);
  ctx.font = `11px ${cssVar('--vscode-font-family', 'sans-serif')}`;
  ctx.fillStyle = fg;
  ctx.fillText(title, 4, 12);
  types.forEach((t, c) => ctx.fillText(t.replace(/_proj$/, ''), LEFT + c * CELL_W + 4, TOP - 2 + 0));
  ls.forEach((l, r) => {
    ctx.fillStyle = fg;
    ctx.fillText(l === null ? '—' : String(l), 4, TOP + r * CELL_H + 11);
    types.forEach((t, c) => {
      const m = findModule(report, l, t);
      ctx.fillStyle = m ? color(vmax > 0 ? m.metrics.effectiveRank / vmax : 0) : 'transparent';
      ctx.fillRect(LEFT + c * CELL_W + 1, TOP + r * CELL_H + 1, CELL_W - 2, CELL_H - 2);
    });
  });
  ctx.fillStyle = fg;
  ctx.fillText(`effective rank, colour scale 0 … ${fmt(vmax)}`, 4, h - 8);
  const tip = el('div', 'tooltip');
  canvas.addEventListener('mousemove', (ev) => {
    const c = Math.floor((ev.offsetX - LEFT) / CELL_W);
    const r = Math.floor((ev.offsetY - TOP) / CELL_H);
    const m = c >= 0 && r >= 0 && r < ls.length && c < types.length ? findModule(report, ls[r], types[c]) : undefined;
    tip.style.display = m ? 'block' : 'none';
    if (m) {
      tip.textContent = `${m.path}: effective rank ${fmt(m.metrics.effectiveRank)}, stable rank ${fmt(m.metrics.stableRank)}, σ_max ${fmt(m.metrics.sigmaMax)}`;
      tip.style.left = `${ev.offsetX + 12}px`;
      tip.style.top = `${ev.offsetY + 12}px`;
    }
  });
  canvas.addEventListener('mouseleave', () => (tip.style.display = 'none'));
  const wrap = el('div', 'heatwrap');
  wrap.append(canvas, tip);
  host.append(wrap);
  return canvas;
}
