// Small pure helpers shared by the spectrum views (no DOM access beyond reading CSS variables).
import type { ModuleSpectrumView, SpectrumReportView } from '../../src/protocol/spectrum';

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  // Counts (ranks, σ above the threshold, intruders) read as counts, not as 6.000.
  if (Number.isInteger(x) && Math.abs(x) < 1e4) return String(x);
  return Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
}

export function shortName(p: string): string {
  const parts = p.split(/[\\/]/).filter(Boolean);
  return parts[parts.length - 1] ?? p;
}

/** Distinct module types in first-seen order (q_proj, k_proj, …). */
export function moduleTypes(r: SpectrumReportView): string[] {
  return [...new Set(r.modules.map((m) => m.moduleType))];
}

/** Distinct layer indices, ascending (null for modules outside numbered layers is kept last). */
export function layers(r: SpectrumReportView): (number | null)[] {
  const ls = [...new Set(r.modules.map((m) => m.layer))];
  return ls.sort((a, b) => (a ?? Infinity) - (b ?? Infinity));
}

export function findModule(r: SpectrumReportView, layer: number | null, type: string): ModuleSpectrumView | undefined {
  return r.modules.find((m) => m.layer === layer && m.moduleType === type);
}

/** Theme colour from a VS Code CSS variable, with a fallback outside VS Code. */
export function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

export function seriesColors(): string[] {
  return [
    cssVar('--vscode-charts-blue', '#3794ff'),
    cssVar('--vscode-charts-orange', '#d18616'),
    cssVar('--vscode-charts-green', '#89d185'),
    cssVar('--vscode-charts-red', '#f14c4c'),
    cssVar('--vscode-charts-purple', '#b180d7'),
    cssVar('--vscode-charts-yellow', '#cca700'),
  ];
}

export { el } from '../dom';

/** Creates a webview-ui-toolkit custom element (vscode-button, vscode-dropdown, …). */
export function tk(tag: `vscode-${string}`, text?: string): HTMLElement {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  return e;
}
