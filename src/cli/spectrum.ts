// `mora spectrum`: exact singular values of every adapted layer's ΔW, with per-module metrics.
import { parseFlags, requireFlag, numberFlag, UsageError, type Command } from './command';
import { analyzeAdapter, type SpectrumReport } from '../spectrum/analyze';
import { analyzeFullFinetune } from '../spectrum/fullFinetune';

const usage = `usage: mora spectrum --adapter DIR [--base DIR] [--json] [--top K] [--threshold X] [--intruders]
       mora spectrum --finetuned DIR --base DIR [--json] [--top K] [--k N]

Prints per-module metrics of ΔW: σ_max, numerical rank (tolerance max(out,in)·eps·σ_max, or the method's accuracy
when larger), effective rank (Roy & Vetterli), stable rank, energy in the top K σ, and the count of σ above X.
LoRA σ come from a QR of B and Aᵀ and an r×r core; MoRA σ from the blocks of M (no SVD of the full ΔW).

  --adapter DIR     PEFT adapter folder (LoRA, DoRA or MoRA)
  --base DIR        base model folder: MoRA in/out sizes (else base_model_name_or_path if it is a local folder)
  --json            print the full report as JSON, including every σ array
  --top K           k of the "energy in the top k" metric (default 8)
  --threshold X     count σ above X (default 0.1, as in the MoRA paper's Figure 5)
  --intruders       also count intruder dimensions per module (needs --base; slow: randomized SVDs of W)
  --finetuned DIR   full fine-tune mode: ΔW = W_finetuned − W_base, top --k σ by randomized SVD (default 32)
`;

function fmt(x: number): string {
  if (x === 0) return '0';
  return Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
}

/** A fixed-width table, one row per module. */
export function formatSpectrumTable(report: SpectrumReport): string {
  const k = report.modules[0]?.metrics.topK ?? 8;
  const th = report.modules[0]?.metrics.threshold ?? 0.1;
  const header = ['module', 'shape', 'rank', 'method', 'σ_max', 'num.rank', 'eff.rank', 'stable', `E(top${k})`, `#σ>${th}`];
  const withIntruders = report.modules.some((m) => m.intruders);
  if (withIntruders) header.push('intruders');
  const rows = report.modules.map((m) => {
    const r = [
      m.path,
      `${m.rows}×${m.cols}`,
      String(m.rank),
      m.method,
      fmt(m.metrics.sigmaMax),
      String(m.metrics.numericalRank),
      fmt(m.metrics.effectiveRank),
      fmt(m.metrics.stableRank),
      fmt(m.metrics.energyTopK),
      String(m.metrics.countAbove),
    ];
    if (withIntruders) r.push(m.intruders ? `${m.intruders.count}/${m.intruders.k}` : '-');
    return r;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const kind = report.kind === 'mora' ? `MoRA type ${report.moraType}` : report.kind === 'full' ? 'full fine-tune' : report.kind.toUpperCase();
  return [
    `${report.adapter}: ${kind}, ${report.modules.length} modules, ${report.elapsedMs.toFixed(0)} ms`,
    line(header),
    ...rows.map(line),
  ].join('\n');
}

/** The command body; `write` receives the output (tests pass a collector instead of stdout). */
export async function runSpectrum(argv: string[], write: (s: string) => void): Promise<number> {
  const { values } = parseFlags(argv, {
    adapter: { type: 'string' },
    base: { type: 'string' },
    json: { type: 'boolean' },
    top: { type: 'string' },
    threshold: { type: 'string' },
    intruders: { type: 'boolean' },
    finetuned: { type: 'string' },
    k: { type: 'string' },
  });
  const topK = numberFlag(values, 'top', 8, { integer: true, min: 1 });
  const threshold = numberFlag(values, 'threshold', 0.1, { min: 0 });
  let report: SpectrumReport;
  if (typeof values.finetuned === 'string') {
    if (values.adapter !== undefined) throw new UsageError('--finetuned and --adapter are exclusive');
    const base = requireFlag(values, 'base');
    const k = numberFlag(values, 'k', 32, { integer: true, min: 1 });
    report = await analyzeFullFinetune(base, values.finetuned, { k, topK, threshold });
  } else {
    const adapter = requireFlag(values, 'adapter');
    if (values.intruders && typeof values.base !== 'string') throw new UsageError('--intruders needs --base');
    report = await analyzeAdapter(adapter, {
      base: typeof values.base === 'string' ? values.base : undefined,
      topK,
      threshold,
      intruders: values.intruders ? {} : false,
    });
  }
  write((values.json ? JSON.stringify(report, null, 1) : formatSpectrumTable(report)) + '\n');
  return 0;
}

export const spectrumCommand: Command = {
  name: 'spectrum',
  summary: 'singular values and rank metrics of every adapted layer (LoRA, MoRA, full fine-tune)',
  usage,
  run: (argv) => runSpectrum(argv, (s) => process.stdout.write(s)),
};
