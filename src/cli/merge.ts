import * as path from 'node:path';
import type { Command } from './command';
import { numberFlag, parseFlags, requireFlag, UsageError } from './command';
import { runAbortable } from './longJob';
import { mergeAdapters, type MergeAdapterSpec, type MergeProgress } from '../adapters/merge';
import { defaultOutputDir, DEFAULT_OUTPUT_PATTERN } from '../adapters/mergeFiles';
import type { MergeMethod, OutputDtype } from '../adapters/mergePlan';

const usage = `usage: mora merge --base DIR --adapter DIR[:WEIGHT] [--adapter DIR[:WEIGHT] ...] [--out DIR]
                  [--method linear|ties] [--density D] [--dtype keep|f32|f16|bf16] [--force] [--quiet]

Merges PEFT adapters (LoRA, rsLoRA, DoRA, MoRA types 1 and 6) into a safetensors model, one tensor at a time.
The output folder has the base's sharding, tensor names and dtypes, its index json and copies of its config,
tokenizer and generation files. It is built in a temp folder and renamed into place: a failed or interrupted
merge (Ctrl-C) leaves nothing behind, and the inputs are never modified.

flags:
  --base DIR           base model folder (model.safetensors or sharded with an index), or one .safetensors file
  --adapter DIR[:W]    PEFT adapter folder, optionally with a weight (default 1); repeat for a multi-adapter merge
  --out DIR            output folder (default: ${DEFAULT_OUTPUT_PATTERN} next to the first adapter)
  --method M           linear: Σ w_i ΔW_i (default); ties: trim, elect sign, disjoint mean (PEFT/mergekit TIES)
  --density D          TIES: fraction of each ΔW kept by magnitude, in [0, 1] (default 1)
  --dtype D            keep (default) | f32 | f16 | bf16: output dtype of the floating-point tensors
  --force              replace an existing output folder
  --quiet              no progress on stderr
`;

/** `DIR` or `DIR:WEIGHT`; a suffix that is not a number stays part of the path (e.g. Windows drive letters). */
export function parseAdapterSpec(spec: string): MergeAdapterSpec {
  const i = spec.lastIndexOf(':');
  if (i > 0) {
    const tail = spec.slice(i + 1);
    const w = Number(tail);
    if (tail.trim() !== '' && Number.isFinite(w) && /^[-+0-9.eE]+$/.test(tail)) return { dir: spec.slice(0, i), weight: w };
  }
  if (spec === '') throw new UsageError('--adapter expects DIR[:WEIGHT]');
  return { dir: spec };
}

const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;

const progressLine = (p: MergeProgress) =>
  `merge: ${p.done}/${p.total} tensors, ${gb(p.bytesDone)} / ${gb(p.bytesTotal)}${p.merged ? ` (merged ${p.tensor})` : ''}`;

export const mergeCommand: Command = {
  name: 'merge',
  summary: 'merge LoRA/DoRA/MoRA adapters into a safetensors model (linear or TIES)',
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      base: { type: 'string' },
      adapter: { type: 'string', multiple: true },
      out: { type: 'string' },
      method: { type: 'string' },
      density: { type: 'string' },
      dtype: { type: 'string' },
      force: { type: 'boolean' },
      quiet: { type: 'boolean' },
    });
    const base = requireFlag(values, 'base');
    const adapters = (values.adapter ?? []).map(parseAdapterSpec);
    if (adapters.length === 0) throw new UsageError('missing required flag --adapter');
    const method = (values.method ?? 'linear') as MergeMethod;
    if (method !== 'linear' && method !== 'ties') throw new UsageError(`--method must be linear or ties, got '${method}'`);
    if (values.density !== undefined && method !== 'ties') throw new UsageError('--density applies to --method ties only');
    const density = numberFlag(values, 'density', 1, { min: 0, max: 1 });
    const dtype = (values.dtype ?? 'keep') as OutputDtype;
    if (!['keep', 'f32', 'f16', 'bf16'].includes(dtype)) throw new UsageError(`--dtype must be keep, f32, f16 or bf16, got '${dtype}'`);
    const out = values.out ?? defaultOutputDir(base, adapters.map((a) => a.dir));

    // Ctrl-C aborts the merge cleanly: the temp folder is removed and the exit code is 2.
    const res = await runAbortable(values.quiet, progressLine, (signal, onProgress) =>
      mergeAdapters({ base, adapters, out, method, density, dtype, force: values.force === true, signal, onProgress }),
    );
    process.stdout.write(
      `merged ${adapters.length} adapter${adapters.length > 1 ? 's' : ''} into ${path.relative(process.cwd(), res.out) || res.out}: ` +
        `${res.mergedTensors}/${res.tensors} tensors changed, ${res.shards.length} shard${res.shards.length > 1 ? 's' : ''}, ` +
        `${gb(res.bytes)} in ${res.seconds.toFixed(1)} s\n`,
    );
    return 0;
  },
};
