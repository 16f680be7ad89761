import * as path from 'node:path';
import type { Command } from './command';
import { numberFlag, parseFlags, requireFlag, UsageError } from './command';
import { runAbortable } from './longJob';
import { extractAdapter, type AdapterDtype, type ExtractProgress, type ExtractResult } from '../adapters/extract';
import type { ExtractMethod, ExtractTargets } from '../adapters/extractPlan';

const usage = `usage: mora extract --base DIR --tuned DIR --out DIR [--method lora|mora] [--r R] [--mora-type 1|6]
                    [--targets a,b|all-linear] [--dtype f32|bf16|f16] [--force] [--quiet]

Extracts ΔW = W_tuned − W_base of a fine-tuned or merged model into a PEFT adapter folder, one tensor at a time.
LoRA: the best rank-r approximation (exact SVD for small matrices, randomized subspace iteration otherwise), split as
lora_B = U·√Σ, lora_A = √Σ·Vᵀ with lora_alpha = r (scaling 1). MoRA: the least-squares square matrix M of the chosen
type (r̂ from r as in training). Modules whose ΔW is exactly zero are left out. Prints each module's relative error
‖ΔW − ΔW(adapter)‖_F / ‖ΔW‖_F. The folder is written atomically; a failed or interrupted run leaves nothing.

flags:
  --base DIR           base model folder (model.safetensors or sharded with an index), or one .safetensors file
  --tuned DIR          the fine-tuned or merged model, same architecture
  --out DIR            adapter folder to write (must not be inside --base or --tuned)
  --method M           lora (default) | mora
  --r R                LoRA rank, or the r that MoRA's r̂ derives from (default 8)
  --mora-type T        MoRA operators: 1 sharing, 6 RoPE rotation (default 6)
  --targets LIST       comma-separated module names (q_proj,v_proj) or all-linear (default: every linear
                       projection inside the decoder layers, not embeddings or the LM head)
  --dtype D            f32 (default) | bf16 | f16: dtype of the adapter tensors
  --force              replace an existing output folder
  --quiet              no progress on stderr
`;

const dtypes: Record<string, AdapterDtype> = { f32: 'F32', bf16: 'BF16', f16: 'F16' };

const progressLine = (p: ExtractProgress) => `extract: ${p.done}/${p.total} tensors (${p.module})`;

/** The per-module table and the summary line. */
export function formatExtractResult(res: ExtractResult, tunedLabel: string): string {
  const rows = res.modules.filter((m) => !m.unchanged);
  const rankHead = res.method === 'mora' ? 'r̂' : 'r';
  const table = [['module', 'shape', rankHead, 'rel. error'], ...rows.map((m) => [m.path, `[${m.outF}, ${m.inF}]`, String(m.rank), m.relError.toExponential(2)])];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const lines = table.map((row) => row.map((cell, c) => (c === 2 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd());
  const unchanged = res.modules.length - rows.length;
  const what = res.method === 'mora' ? `MoRA type ${res.moraType}, r=${res.r}` : `LoRA r=${res.r}`;
  const where = path.relative(process.cwd(), res.out) || res.out;
  lines.push(
    `extracted ${res.extracted} module${res.extracted === 1 ? '' : 's'} (${what}, ${res.dtype}) from ${tunedLabel} into ${where}: ` +
      `overall relative error ${res.relError.toExponential(2)}, ${unchanged} unchanged left out, ${res.seconds.toFixed(1)} s`,
  );
  return lines.join('\n') + '\n';
}

export const extractCommand: Command = {
  name: 'extract',
  summary: 'extract the ΔW of a fine-tuned or merged model into a LoRA or MoRA adapter',
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      base: { type: 'string' },
      tuned: { type: 'string' },
      out: { type: 'string' },
      method: { type: 'string' },
      r: { type: 'string' },
      'mora-type': { type: 'string' },
      targets: { type: 'string' },
      dtype: { type: 'string' },
      force: { type: 'boolean' },
      quiet: { type: 'boolean' },
    });
    const base = requireFlag(values, 'base');
    const tuned = requireFlag(values, 'tuned');
    const out = requireFlag(values, 'out');
    const method = (values.method ?? 'lora') as ExtractMethod;
    if (method !== 'lora' && method !== 'mora') throw new UsageError(`--method must be lora or mora, got '${method}'`);
    const r = numberFlag(values, 'r', 8, { integer: true, min: 1 });
    const moraType = numberFlag(values, 'mora-type', 6, { integer: true });
    if (moraType !== 1 && moraType !== 6) throw new UsageError(`--mora-type must be 1 or 6, got ${moraType}`);
    if (values['mora-type'] !== undefined && method !== 'mora') throw new UsageError('--mora-type applies to --method mora only');
    const dtype = dtypes[values.dtype ?? 'f32'];
    if (!dtype) throw new UsageError(`--dtype must be f32, bf16 or f16, got '${values.dtype}'`);
    const list = (values.targets ?? 'all-linear').split(',').map((t) => t.trim()).filter((t) => t !== '');
    if (list.length === 0) throw new UsageError('--targets expects module names or all-linear');
    const targetModules: ExtractTargets = list.length === 1 && list[0] === 'all-linear' ? 'all-linear' : list;

    // Ctrl-C aborts cleanly between tensors: nothing is written and the exit code is 2.
    const res = await runAbortable(values.quiet, progressLine, (signal, onProgress) =>
      extractAdapter({ base, tuned, out, method, r, moraType, targetModules, dtype, force: values.force === true, signal, onProgress }),
    );
    process.stdout.write(formatExtractResult(res, tuned));
    return 0;
  },
};
