// The host↔spectrum-webview boundary. The panel shows one adapter, or two side by side in compare mode. The host
// owns the analysis (run in a child process) and the reports; the webview draws them and asks for exports.
// Every message is `area/verb`; the comment on each says which way it travels.

/** Per-module metrics, as src/spectrum/metrics.ts computes them. */
export interface MetricsView {
  sigmaMax: number;
  /** ‖ΔW‖_F = sqrt(Σσ²). */
  frobenius: number;
  numericalRank: number;
  /** The absolute tolerance the numerical rank used (σ > tol counts). */
  rankTol: number;
  /** Roy & Vetterli (2007): exp of the Shannon entropy of p_i = σ_i / Σσ. In [1, rank]; 0 for ΔW = 0. */
  effectiveRank: number;
  /** ‖ΔW‖_F² / ‖ΔW‖₂²; 0 for ΔW = 0. */
  stableRank: number;
  topK: number;
  /** Σ_{i<k} σ_i² / Σσ² (fraction of the squared Frobenius norm); 0 for ΔW = 0. */
  energyTopK: number;
  threshold: number;
  /** How many σ exceed `threshold`. */
  countAbove: number;
}

export interface IntrudersView {
  count: number;
  k: number;
  threshold: number;
  maxSimilarity: number[];
}

export interface ModuleSpectrumView {
  path: string;
  layer: number | null;
  /** Last path segment, e.g. q_proj. */
  moduleType: string;
  /** 'full': ΔW = W_finetuned − W_base of a full fine-tune. */
  kind: 'lora' | 'dora' | 'mora' | 'full';
  /** ΔW is rows × cols = out × in. */
  rows: number;
  cols: number;
  /** r for LoRA, r̂ for MoRA. */
  rank: number;
  /** Descending; the remaining min(rows, cols) − sigma.length values are exactly zero. */
  sigma: number[];
  method: 'closed-form' | 'structured' | 'low-rank' | 'randomized';
  /** Absolute accuracy of sigma (floor of the rank tolerance). */
  tolerance: number;
  metrics: MetricsView;
  intruders?: IntrudersView;
}

export interface SpectrumReportView {
  adapter: string;
  base: string | null;
  kind: 'lora' | 'dora' | 'mora' | 'full';
  moraType: 1 | 6 | null;
  r: number;
  modules: ModuleSpectrumView[];
  elapsedMs: number;
}

/** Which side of the panel: 0 is the primary adapter, 1 the comparison. */
export type Slot = 0 | 1;

/** What the panel needs to rebuild itself after a reload (stored with the webview's setState). */
export interface SpectrumPanelState {
  adapters: string[];
  /** Base model folder per adapter ('' when none). */
  bases: string[];
  view: 'spectrum' | 'overlay' | 'heatmap' | 'table';
  /** Layers picked for the overlay chart, as strings ('0', '12'; 'null' for modules outside numbered layers). */
  overlay: string[];
  /** Module shown in the single-spectrum view. */
  selected: string | null;
  /**
   * Intruder dimensions (Shuttleworth et al., arXiv 2410.21228) requested for every slot with a base model. Opt-in
   * because each module costs two randomized SVDs of W; absent in states saved before the toggle existed, meaning off.
   */
  intruders?: boolean;
}

export type SlotStatus =
  | { state: 'idle' }
  | { state: 'running'; done: number; total: number; module: string }
  | { state: 'done' }
  | { state: 'cancelled' }
  | { state: 'failed'; message: string };

/** host → webview */
export type HostToSpectrum =
  | { type: 'spectrum/init'; reports: (SpectrumReportView | null)[]; status: SlotStatus[]; state: SpectrumPanelState } // host → webview: full snapshot (after ready, revive, or a new adapter)
  | { type: 'spectrum/progress'; slot: Slot; done: number; total: number; module: string } // host → webview: ≤ 4 per second
  | { type: 'spectrum/result'; slot: Slot; report: SpectrumReportView } // host → webview: one analysis finished
  | { type: 'spectrum/status'; slot: Slot; status: SlotStatus }; // host → webview: cancelled or failed

/** webview → host */
export type SpectrumToHost =
  | { type: 'spectrum/ready' } // webview → host: script loaded, send the snapshot
  | { type: 'spectrum/cancel' } // webview → host: stop the running analyses
  | { type: 'spectrum/compare' } // webview → host: pick a second adapter and show both side by side
  | { type: 'spectrum/state'; state: SpectrumPanelState } // webview → host: UI choices changed (host keeps them for the snapshot)
  | { type: 'spectrum/intruders'; enabled: boolean } // webview → host: toggle intruder dimensions; the host re-runs the slots with a base
  | { type: 'spectrum/exportCsv' } // webview → host: save every module's metrics and σ as CSV
  | { type: 'spectrum/exportPng'; name: string; dataUrl: string }; // webview → host: save a chart the webview rendered

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

const isStr = (x: unknown, max = 4096): x is string => typeof x === 'string' && x.length <= max;
const views = ['spectrum', 'overlay', 'heatmap', 'table'] as const;

/** PNG exports are capped so a hostile or buggy webview cannot make the host buffer arbitrary amounts. */
export const MAX_PNG_DATA_URL = 16 * 1024 * 1024;
const PNG_PREFIX = 'data:image/png;base64,';
const MAX_OVERLAY = 1024;

export function isSpectrumPanelState(x: unknown): x is SpectrumPanelState {
  return (
    isObject(x) &&
    Array.isArray(x.adapters) &&
    x.adapters.length >= 1 &&
    x.adapters.length <= 2 &&
    x.adapters.every((a) => isStr(a) && a !== '') &&
    Array.isArray(x.bases) &&
    x.bases.length === x.adapters.length &&
    x.bases.every((b) => isStr(b)) &&
    views.includes(x.view as (typeof views)[number]) &&
    Array.isArray(x.overlay) &&
    // Every layer of the deepest models (LLaMA-2-70B has 80) may be ticked; a state over the cap would close the
    // panel on reload.
    x.overlay.length <= MAX_OVERLAY &&
    x.overlay.every((p) => isStr(p, 512)) &&
    (x.selected === null || isStr(x.selected, 512)) &&
    (x.intruders === undefined || typeof x.intruders === 'boolean')
  );
}

/**
 * Whether intruder dimensions can be computed for `slot`: it names a base model folder, or its finished report found
 * one (analyzeAdapter also resolves base_model_name_or_path when that is a local folder).
 */
export function slotHasBase(state: SpectrumPanelState, reports: readonly (SpectrumReportView | null)[], slot: Slot): boolean {
  return (state.bases[slot] ?? '') !== '' || !!reports[slot]?.base;
}

/** Validates every message arriving at the host from the webview; anything else is dropped. */
export function isSpectrumToHost(x: unknown): x is SpectrumToHost {
  if (!isObject(x) || typeof x.type !== 'string') return false;
  const keys = Object.keys(x).length;
  switch (x.type) {
    case 'spectrum/ready':
    case 'spectrum/cancel':
    case 'spectrum/compare':
    case 'spectrum/exportCsv':
      return keys === 1;
    case 'spectrum/state':
      return keys === 2 && isSpectrumPanelState(x.state);
    case 'spectrum/intruders':
      return keys === 2 && typeof x.enabled === 'boolean';
    case 'spectrum/exportPng':
      return (
        keys === 3 &&
        isStr(x.name, 128) &&
        /^[\w.-]+$/.test(x.name) &&
        typeof x.dataUrl === 'string' &&
        x.dataUrl.length <= MAX_PNG_DATA_URL &&
        x.dataUrl.startsWith(PNG_PREFIX) &&
        /^[A-Za-z0-9+/]*={0,2}$/.test(x.dataUrl.slice(PNG_PREFIX.length))
      );
    default:
      return false;
  }
}

function isStatus(x: unknown): x is SlotStatus {
  if (!isObject(x)) return false;
  switch (x.state) {
    case 'idle':
    case 'done':
    case 'cancelled':
      return true;
    case 'running':
      return typeof x.done === 'number' && typeof x.total === 'number' && typeof x.module === 'string';
    case 'failed':
      return typeof x.message === 'string';
    default:
      return false;
  }
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** The table and CSV print `count`; a present but malformed intruders field drops the whole report. */
function isIntrudersView(x: unknown): x is IntrudersView {
  return (
    isObject(x) &&
    isCount(x.count) &&
    isCount(x.k) &&
    x.count <= x.k &&
    typeof x.threshold === 'number' &&
    Array.isArray(x.maxSimilarity) &&
    x.maxSimilarity.every((s) => typeof s === 'number')
  );
}

export function isReportView(x: unknown): x is SpectrumReportView {
  return (
    isObject(x) &&
    typeof x.adapter === 'string' &&
    (x.base === undefined || x.base === null || typeof x.base === 'string') &&
    Array.isArray(x.modules) &&
    x.modules.every(
      (m) =>
        isObject(m) &&
        typeof m.path === 'string' &&
        Array.isArray(m.sigma) &&
        isObject(m.metrics) &&
        (m.intruders === undefined || isIntrudersView(m.intruders)),
    )
  );
}

const isSlot = (x: unknown): x is Slot => x === 0 || x === 1;

/** Validates messages arriving at the webview (the host is trusted more, but a stale or foreign message is dropped). */
export function isHostToSpectrum(x: unknown): x is HostToSpectrum {
  if (!isObject(x) || typeof x.type !== 'string') return false;
  switch (x.type) {
    case 'spectrum/init':
      return (
        Array.isArray(x.reports) &&
        x.reports.every((r) => r === null || isReportView(r)) &&
        Array.isArray(x.status) &&
        x.status.every(isStatus) &&
        isSpectrumPanelState(x.state)
      );
    case 'spectrum/progress':
      return isSlot(x.slot) && typeof x.done === 'number' && typeof x.total === 'number' && typeof x.module === 'string';
    case 'spectrum/result':
      return isSlot(x.slot) && isReportView(x.report);
    case 'spectrum/status':
      return isSlot(x.slot) && isStatus(x.status);
    default:
      return false;
  }
}

/** One CSV row per module: adapter, module, shape, metrics, then σ joined by spaces (RFC 4180 quoting). */
export function spectrumCsv(reports: SpectrumReportView[]): string {
  const q = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const head = ['adapter', 'module', 'layer', 'type', 'rows', 'cols', 'rank', 'method', 'sigma_max', 'frobenius',
    'numerical_rank', 'rank_tol', 'effective_rank', 'stable_rank', 'top_k', 'energy_top_k', 'threshold', 'count_above',
    'intruders', 'sigma'];
  const lines = [head.join(',')];
  for (const r of reports) {
    for (const m of r.modules) {
      const x = m.metrics;
      lines.push([r.adapter, m.path, m.layer ?? '', m.moduleType, m.rows, m.cols, m.rank, m.method, x.sigmaMax, x.frobenius,
        x.numericalRank, x.rankTol, x.effectiveRank, x.stableRank, x.topK, x.energyTopK, x.threshold, x.countAbove,
        m.intruders ? m.intruders.count : '', m.sigma.join(' ')].map((v) => q(String(v))).join(','));
    }
  }
  return lines.join('\r\n') + '\r\n';
}
