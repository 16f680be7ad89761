import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  isHostToSpectrum, isReportView, isSpectrumPanelState, isSpectrumToHost, MAX_PNG_DATA_URL, slotHasBase, spectrumCsv,
  type SpectrumPanelState, type SpectrumReportView,
} from '../../src/protocol/spectrum';
import { isHostToWorker, isWorkerToHost } from '../../src/protocol/spectrumWorker';
import { defaultAdapterConfig, writeAdapter } from '../../src/adapters';
import { float32ToBytes, writeSafetensors } from '../../src/safetensors';
import { analyzeAdapter } from '../../src/spectrum/analyze';
import { Rng } from '../../src/util/rng';
import { runSpectrumWorker, SpectrumWorkerError, WorkerCancelled } from '../../extension/spectrumWorkerClient';

const state: SpectrumPanelState = { adapters: ['/a'], bases: [''], view: 'table', overlay: ['0', '3'], selected: null };

test('webview → host: well-formed messages pass, malformed ones are rejected', () => {
  for (const ok of [
    { type: 'spectrum/ready' },
    { type: 'spectrum/cancel' },
    { type: 'spectrum/compare' },
    { type: 'spectrum/exportCsv' },
    { type: 'spectrum/state', state },
    { type: 'spectrum/exportPng', name: 'spectrum-overlay', dataUrl: 'data:image/png;base64,iVBORw0KGgo=' },
  ]) assert.ok(isSpectrumToHost(ok), JSON.stringify(ok));
  const bad: unknown[] = [
    null, 'spectrum/ready', [], {}, { type: 'spectrum/unknown' }, { type: 'train/cancel' },
    { type: 'spectrum/ready', extra: 1 }, // unexpected fields
    { type: 'spectrum/state', state: { ...state, view: 'pie' } },
    { type: 'spectrum/state', state: { ...state, adapters: [] } },
    { type: 'spectrum/state', state: { ...state, adapters: ['/a', '/b', '/c'], bases: ['', '', ''] } },
    { type: 'spectrum/state', state: { ...state, bases: [] } }, // one base per adapter
    { type: 'spectrum/state', state: { ...state, overlay: [1] } },
    { type: 'spectrum/exportPng', name: '../../etc/passwd', dataUrl: 'data:image/png;base64,AAAA' }, // path in name
    { type: 'spectrum/exportPng', name: 'x', dataUrl: 'data:text/html;base64,AAAA' }, // not a PNG data URL
    { type: 'spectrum/exportPng', name: 'x', dataUrl: 'data:image/png;base64,<script>' }, // not base64
    { type: 'spectrum/exportPng', name: 'x', dataUrl: 'data:image/png;base64,' + 'A'.repeat(MAX_PNG_DATA_URL) }, // too large
  ];
  for (const b of bad) assert.equal(isSpectrumToHost(b), false, JSON.stringify(b)?.slice(0, 120));
  assert.equal(isSpectrumPanelState({ ...state, selected: 3 }), false);
  // All 80 layers of a LLaMA-2-70B adapter ticked in the overlay is a state the panel must survive a reload with.
  assert.ok(isSpectrumPanelState({ ...state, overlay: Array.from({ length: 80 }, (_, i) => String(i)) }));
  assert.equal(isSpectrumPanelState({ ...state, overlay: Array.from({ length: 1025 }, (_, i) => String(i)) }), false);
});

const report: SpectrumReportView = {
  adapter: '/runs/a,b', base: null, kind: 'lora', moraType: null, r: 2, elapsedMs: 1,
  modules: [{
    path: 'model.layers.0.self_attn.q_proj', layer: 0, moduleType: 'q_proj', kind: 'lora', rows: 4, cols: 3, rank: 2,
    sigma: [2, 0.5], method: 'low-rank', tolerance: 1e-15,
    metrics: { sigmaMax: 2, frobenius: 2.0615528128088303, numericalRank: 2, rankTol: 1e-15, effectiveRank: 1.6494, stableRank: 1.0625, topK: 8, energyTopK: 1, threshold: 0.1, countAbove: 2 },
  }],
};

test('host → webview validation and CSV export (quoted adapter path, σ list)', () => {
  assert.ok(isHostToSpectrum({ type: 'spectrum/init', reports: [report, null], status: [{ state: 'done' }, { state: 'running', done: 1, total: 4, module: 'm' }], state }));
  assert.ok(isHostToSpectrum({ type: 'spectrum/result', slot: 1, report }));
  assert.equal(isHostToSpectrum({ type: 'spectrum/result', slot: 2, report }), false);
  assert.equal(isHostToSpectrum({ type: 'spectrum/status', slot: 0, status: { state: 'exploded' } }), false);
  const csv = spectrumCsv([report]).split('\r\n');
  assert.equal(csv.length, 3);
  assert.ok(csv[0].startsWith('adapter,module,layer,type,rows,cols,rank,method,sigma_max'));
  assert.equal(csv[1], '"/runs/a,b",model.layers.0.self_attn.q_proj,0,q_proj,4,3,2,low-rank,2,2.0615528128088303,2,1e-15,1.6494,1.0625,8,1,0.1,2,,2 0.5');
});

test('intruders toggle: panel state field (missing = off), spectrum/intruders message, slotHasBase', () => {
  // A state saved before the toggle existed has no field and must still restore the panel.
  assert.equal('intruders' in state, false);
  assert.ok(isSpectrumPanelState(state));
  assert.ok(isSpectrumPanelState({ ...state, intruders: true }));
  assert.ok(isSpectrumPanelState({ ...state, intruders: false }));
  for (const bad of ['yes', 1, 0, null, {}, [true]]) assert.equal(isSpectrumPanelState({ ...state, intruders: bad }), false, String(bad));
  assert.ok(isSpectrumToHost({ type: 'spectrum/state', state: { ...state, intruders: true } }));
  assert.equal(isSpectrumToHost({ type: 'spectrum/state', state: { ...state, intruders: 'on' } }), false);
  assert.ok(isHostToSpectrum({ type: 'spectrum/init', reports: [null], status: [{ state: 'idle' }], state: { ...state, intruders: true } }));
  assert.equal(isHostToSpectrum({ type: 'spectrum/init', reports: [null], status: [{ state: 'idle' }], state: { ...state, intruders: 1 } }), false);

  assert.ok(isSpectrumToHost({ type: 'spectrum/intruders', enabled: true }));
  assert.ok(isSpectrumToHost({ type: 'spectrum/intruders', enabled: false }));
  for (const bad of [{ type: 'spectrum/intruders' }, { type: 'spectrum/intruders', enabled: 'true' }, { type: 'spectrum/intruders', enabled: 1 },
    { type: 'spectrum/intruders', enabled: true, slot: 0 }]) assert.equal(isSpectrumToHost(bad), false, JSON.stringify(bad));

  // A base comes from the state (the command's { base }) or from the report (base_model_name_or_path resolved).
  const two: SpectrumPanelState = { ...state, adapters: ['/a', '/b'], bases: ['/base', ''] };
  assert.equal(slotHasBase(two, [null, null], 0), true);
  assert.equal(slotHasBase(two, [null, null], 1), false);
  assert.equal(slotHasBase(two, [null, { ...report, base: '/from-config' }], 1), true);
  assert.equal(slotHasBase(two, [null, report], 1), false);
});

test('reports with intruder counts: validated, and counted in the CSV export', () => {
  const intruders = { count: 2, k: 3, kBase: 8, threshold: 0.5, maxSimilarity: [0.9, 0.3, 0.1], indices: [1, 2] };
  const withIntr: SpectrumReportView = { ...report, modules: [{ ...report.modules[0], intruders }] };
  assert.ok(isReportView(withIntr));
  assert.ok(isHostToSpectrum({ type: 'spectrum/result', slot: 0, report: withIntr }));
  for (const bad of [{ ...intruders, count: -1 }, { ...intruders, count: 4 }, { ...intruders, count: '2' }, { ...intruders, count: 1.5 },
    { ...intruders, maxSimilarity: ['x'] }, null]) {
    assert.equal(isReportView({ ...report, modules: [{ ...report.modules[0], intruders: bad }] }), false, JSON.stringify(bad));
  }
  const row = spectrumCsv([withIntr]).split('\r\n')[1].split(',');
  const head = spectrumCsv([withIntr]).split('\r\n')[0].split(',');
  assert.equal(row[head.indexOf('intruders') + 1], '2'); // +1: the quoted adapter path holds a comma
});

test('worker protocol validators', () => {
  assert.ok(isHostToWorker({ type: 'analyze/start', job: { adapter: '/x', topK: 4 } }));
  assert.equal(isHostToWorker({ type: 'analyze/start', job: { adapter: '' } }), false);
  assert.equal(isHostToWorker({ type: 'analyze/start', job: { adapter: '/x', topK: 'many' } }), false);
  assert.ok(isWorkerToHost({ type: 'analyze/error', name: 'AdapterError', kind: 'ConfigMissing', message: 'm' }));
  assert.equal(isWorkerToHost({ type: 'analyze/done', report: { adapter: 1 } }), false);
});

// ---- the real worker process (forked through tsx, as the extension forks dist/spectrumWorker.js) ----
let root: string;
const worker = path.resolve(__dirname, '../../src/spectrum/worker.ts');
function token(cancelAfterMs?: number) {
  const listeners: (() => void)[] = [];
  const t = { isCancellationRequested: false, onCancellationRequested: (f: () => void) => (listeners.push(f), { dispose() {} }) };
  if (cancelAfterMs !== undefined) setTimeout(() => ((t.isCancellationRequested = true), listeners.forEach((f) => f())), cancelAfterMs);
  return t as never;
}

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'mora-spw-'));
  const cfg = defaultAdapterConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'] });
  const mods = [0, 1, 2].map((l) => ({ path: `model.layers.${l}.self_attn.q_proj`, A: new Float32Array(2 * 6).fill(l + 1), aShape: [2, 6], B: new Float32Array(5 * 2).fill(1), bShape: [5, 2] }));
  await writeAdapter(path.join(root, 'lora'), cfg, mods);
});
after(() => rmSync(root, { recursive: true, force: true }));

test('worker process: analyzes an adapter and reports the result', async () => {
  const progress: number[] = [];
  const r = await runSpectrumWorker(worker, { adapter: path.join(root, 'lora') }, token(), (p) => progress.push(p.done));
  assert.equal(r.modules.length, 3);
  // B·A with constant rows is rank one: σ = s·‖B col sum‖·‖A row‖ = 2 · sqrt(5·4) · sqrt(6)·(l+1).
  assert.ok(Math.abs(r.modules[2].sigma[0] - 2 * Math.sqrt(20) * Math.sqrt(6) * 3) < 1e-9);
  assert.equal(progress[progress.length - 1], 3);
});

test('worker process: errors keep their name and kind; cancel rejects with WorkerCancelled', async () => {
  await assert.rejects(
    runSpectrumWorker(worker, { adapter: path.join(root, 'missing') }, token(), () => {}),
    (e: unknown) => e instanceof SpectrumWorkerError && e.name === 'AdapterError' && e.kind === 'ConfigMissing',
  );
  await assert.rejects(runSpectrumWorker(worker, { adapter: path.join(root, 'lora') }, token(0), () => {}), (e: unknown) => e instanceof WorkerCancelled);
});

test('worker process: intruders job matches analyzeAdapter with the default intruder options', async () => {
  // A base with random [5, 6] q_proj weights for the three layers of the `lora` adapter.
  const rng = new Rng(3);
  const base = path.join(root, 'base');
  mkdirSync(base);
  await writeSafetensors(path.join(base, 'model.safetensors'), [0, 1, 2].map((l) => ({
    name: `model.layers.${l}.self_attn.q_proj.weight`, dtype: 'F32' as const, shape: [5, 6],
    data: float32ToBytes(Float32Array.from({ length: 30 }, () => rng.normal()), 'F32'),
  })));
  const adapter = path.join(root, 'lora');
  const off = await runSpectrumWorker(worker, { adapter, base }, token(), () => {});
  assert.ok(off.modules.every((m) => m.intruders === undefined));
  const on = await runSpectrumWorker(worker, { adapter, base, intruders: true }, token(), () => {});
  const direct = await analyzeAdapter(adapter, { base, intruders: {} });
  // k = min(10, 5, 6) examined vectors per module; the counts and similarities survive the process boundary.
  assert.deepEqual(on.modules.map((m) => m.intruders?.k), [5, 5, 5]);
  assert.deepEqual(on.modules.map((m) => m.intruders?.count), direct.modules.map((m) => m.intruders!.count));
  assert.deepEqual(on.modules.map((m) => m.intruders?.maxSimilarity), direct.modules.map((m) => m.intruders!.maxSimilarity));
});
