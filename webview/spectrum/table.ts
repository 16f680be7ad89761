// Sortable metrics table: one row per module (and per adapter in compare mode). Click a header to sort.
import type { ModuleSpectrumView, SpectrumReportView } from '../../src/protocol/spectrum';
import { el, fmt, shortName } from './format';

interface Row {
  adapter: string;
  m: ModuleSpectrumView;
}

type Col = [label: string, value: (r: Row) => number | string];

export function metricsTable(host: HTMLElement, reports: SpectrumReportView[]): void {
  const rows: Row[] = reports.flatMap((r) => r.modules.map((m) => ({ adapter: shortName(r.adapter), m })));
  const k = rows[0]?.m.metrics.topK ?? 8;
  const th = rows[0]?.m.metrics.threshold ?? 0.1;
  const cols: Col[] = [
    ...(reports.length > 1 ? ([['adapter', (r: Row) => r.adapter]] as Col[]) : []),
    ['module', (r) => r.m.path],
    ['layer', (r) => r.m.layer ?? -1],
    ['type', (r) => r.m.moduleType],
    ['shape', (r) => `${r.m.rows}×${r.m.cols}`],
    ['rank', (r) => r.m.rank],
    ['method', (r) => r.m.method],
    ['σ_max', (r) => r.m.metrics.sigmaMax],
    ['num. rank', (r) => r.m.metrics.numericalRank],
    ['eff. rank', (r) => r.m.metrics.effectiveRank],
    ['stable rank', (r) => r.m.metrics.stableRank],
    [`energy top ${k}`, (r) => r.m.metrics.energyTopK],
    [`#σ > ${th}`, (r) => r.m.metrics.countAbove],
    ...(rows.some((r) => r.m.intruders) ? ([['intruders', (r: Row) => r.m.intruders?.count ?? -1]] as Col[]) : []),
  ];
  let sortCol = -1;
  let asc = true;
  const table = el('table', 'metrics');
  const render = (): void => {
    table.replaceChildren();
    const head = el('tr');
    cols.forEach(([label], i) => {
      const h = el('th', undefined, label + (i === sortCol ? (asc ? ' ▲' : ' ▼') : ''));
      h.tabIndex = 0;
      h.setAttribute('role', 'columnheader');
      h.setAttribute('aria-sort', i === sortCol ? (asc ? 'ascending' : 'descending') : 'none');
      const sort = (): void => {
        asc = sortCol === i ? !asc : true;
        sortCol = i;
        render();
      };
      h.addEventListener('click', sort);
      h.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && sort());
      head.append(h);
    });
    table.append(el('thead'), el('tbody'));
    table.tHead!.append(head);
    const sorted = sortCol < 0 ? rows : [...rows].sort((a, b) => {
      const x = cols[sortCol][1](a);
      const y = cols[sortCol][1](b);
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    for (const r of sorted) {
      const tr = el('tr');
      for (const [, value] of cols) {
        const v = value(r);
        tr.append(el('td', typeof v === 'number' ? 'num' : undefined, typeof v === 'number' ? (v === -1 ? '—' : fmt(v)) : v));
      }
      table.tBodies[0].append(tr);
    }
  };
  render();
  host.append(table);
}
