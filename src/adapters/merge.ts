// Streaming merge of one or more PEFT adapters (LoRA, rsLoRA, DoRA, MoRA types 1 and 6) into a safetensors model.
//
// Everything is validated before the first byte is written; the output is built in a temp sibling folder and renamed
// into place, so a failed or cancelled merge leaves nothing. The output keeps the base's sharding, tensor names and
// (by default) dtypes. When dtypes are kept, a merged tensor has exactly the base tensor's dtype and size, so the
// header and every other byte of the shard stay as they are: a shard with few merged bytes is copied whole (the
// kernel's copy, the fastest path) and only its merged tensors are overwritten in place; a mostly merged shard is
// streamed front to back instead (mergeStream.ts), which spares copying bytes that are overwritten anyway.
// Memory stays around a few tensors.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { dtypeSize, ModelWeights, numel } from '../safetensors';
import { writeDirAtomic } from '../util/atomic';
import { MergeError } from './mergeError';
import { checkArchitecture, checkOutputNotInput, copySideFiles, writeIndex } from './mergeFiles';
import { asMergeError, planMerge, type MergeMethod, type MergeSource, type OutputDtype, type TensorPlan } from './mergePlan';
import { copyAndPatchShard, isMerged, rewriteShard, type ShardContext } from './mergeShard';
import { mergedFraction, STREAM_ABOVE, streamShard, streamState, type StreamState } from './mergeStream';
import { readAdapter } from './peftAdapter';

export interface MergeAdapterSpec {
  dir: string;
  weight?: number; // default 1
}

export interface MergeOptions {
  base: string; // model folder (sharded or not) or a single .safetensors file
  adapters: MergeAdapterSpec[];
  out: string;
  method?: MergeMethod; // default linear
  density?: number; // TIES only, in [0, 1]; default 1
  dtype?: OutputDtype; // default keep
  force?: boolean; // replace an existing output folder
  signal?: AbortSignal;
  /**
   * How dtype-keeping shards are written: 'auto' (default) streams a shard of a linear merge when more than
   * STREAM_ABOVE of its bytes are merged and copies + patches it otherwise; 'patch' and 'stream' force one way (tests, benchmarks).
   * The output bytes are the same either way.
   */
  shardStrategy?: 'auto' | 'patch' | 'stream';
  /** Called once per tensor as it completes (consumers throttle their display). */
  onProgress?: (p: MergeProgress) => void;
}

export interface MergeProgress {
  done: number; // tensors finished
  total: number;
  tensor: string; // the tensor just finished
  merged: boolean; // it received a ΔW (or replacement) rather than a copy
  bytesDone: number; // output tensor bytes finished
  bytesTotal: number;
}

export interface MergeResult {
  out: string;
  tensors: number;
  mergedTensors: number;
  bytes: number; // output tensor bytes
  shards: string[]; // output shard file names, relative to `out`
  sideFiles: string[];
  seconds: number;
}

async function openBase(base: string): Promise<{ weights: ModelWeights; dir: string }> {
  try {
    const weights = await ModelWeights.open(base);
    const st = await fs.stat(base);
    return { weights, dir: st.isDirectory() ? base : path.dirname(base) };
  } catch (err) {
    const e = err as Error & { kind?: string };
    throw new MergeError('InvalidBase', `${base}: ${e.name}${e.kind ? ` ${e.kind}` : ''}: ${e.message}`, { cause: err });
  }
}

async function loadSources(specs: MergeAdapterSpec[]): Promise<MergeSource[]> {
  const sources: MergeSource[] = [];
  for (const spec of specs) {
    try {
      const adapter = await readAdapter(spec.dir);
      sources.push({ adapter, weight: spec.weight ?? 1 });
    } catch (err) {
      const mapped = asMergeError(err, spec.dir);
      if (mapped instanceof MergeError) throw mapped;
      const e = err as Error & { kind?: string };
      throw new MergeError('InvalidAdapter', `${spec.dir}: ${e.name}${e.kind ? ` ${e.kind}` : ''}: ${e.message}`, { cause: err });
    }
  }
  return sources;
}

/** Merges the adapters into the base model and writes the output folder atomically. */
export async function mergeAdapters(opts: MergeOptions): Promise<MergeResult> {
  const started = performance.now();
  const out = path.resolve(opts.out);
  if (opts.adapters.length === 0) throw new MergeError('BadOption', 'no adapters to merge');
  if (opts.shardStrategy !== undefined && !['auto', 'patch', 'stream'].includes(opts.shardStrategy)) {
    throw new MergeError('BadOption', `shardStrategy must be auto, patch or stream, not ${String(opts.shardStrategy)}`);
  }
  checkOutputNotInput(out, [opts.base, ...opts.adapters.map((a) => a.dir)]);
  if (!opts.force && (await fs.stat(out).then(() => true, () => false))) {
    throw new MergeError('OutputExists', `${out} already exists (use force to replace it)`);
  }
  const cancelled = () => {
    if (opts.signal?.aborted) throw new MergeError('Cancelled', 'merge cancelled');
  };
  cancelled();

  const { weights, dir: baseDir } = await openBase(opts.base);
  try {
    const sources = await loadSources(opts.adapters);
    for (const s of sources) await checkArchitecture(baseDir, s.adapter);
    const plan = planMerge(weights, sources, { method: opts.method, density: opts.density, dtype: opts.dtype });
    const sizeOf = (t: TensorPlan) => numel(t.info.shape) * dtypeSize(t.outDtype);
    const bytesTotal = plan.tensors.reduce((a, t) => a + sizeOf(t), 0);
    // Half the largest tensor may wait for a shard copy, keeping the peak near 2-3x the largest tensor.
    const holdBytes = plan.tensors.reduce((a, t) => Math.max(a, sizeOf(t)), 0) / 2;
    let done = 0;
    let bytesDone = 0;
    const report = (t: TensorPlan) => {
      done++;
      bytesDone += sizeOf(t);
      opts.onProgress?.({
        done, total: plan.tensors.length, tensor: t.name, merged: isMerged(t), bytesDone, bytesTotal,
      });
    };
    const rootOf = weights.indexPath ? path.dirname(weights.indexPath) : path.dirname(weights.shards[0]);
    const shardNames = weights.shards.map((s) => path.relative(rootOf, s));
    let sideFiles: string[] = [];

    await writeDirAtomic(
      out,
      async (tmp) => {
        const shared: ShardShared = { plan, sources, weights, cancelled, report, holdBytes, strategy: opts.shardStrategy };
        await writeShards(tmp, shardNames, shared);
        if (weights.index) await writeIndex(path.join(tmp, path.basename(weights.indexPath!)), weights.index, plan.tensors, sizeOf);
        sideFiles = await copySideFiles(baseDir, tmp, opts.dtype ?? 'keep');
        cancelled();
      },
      { replace: opts.force === true },
    );
    return {
      out,
      tensors: plan.tensors.length,
      mergedTensors: plan.merged,
      bytes: bytesTotal,
      shards: shardNames,
      sideFiles,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await weights.close();
  }
}


type ShardShared = Omit<ShardContext, 'shard' | 'target' | 'tensors'> & { strategy: MergeOptions['shardStrategy'] };

/** Writes every weight shard into `tmp`, choosing per shard: rewrite (dtype change), streamed, or copy + patch. */
async function writeShards(tmp: string, names: string[], shared: ShardShared): Promise<void> {
  const { plan, weights, strategy } = shared;
  let stream: StreamState | undefined; // made for the first streamed shard, shared by the others
  for (const [i, shard] of weights.shards.entries()) {
    shared.cancelled();
    const target = path.join(tmp, names[i]);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tensors = plan.byShard.get(shard) ?? [];
    const ctx: ShardContext = { ...shared, shard, target, tensors };
    if (!tensors.every((t) => t.outDtype === t.info.dtype)) await rewriteShard(ctx);
    else if (streamed(ctx, strategy)) {
      const sizeOf = (t: TensorPlan) => t.info.dataOffsets[1] - t.info.dataOffsets[0];
      stream ??= streamState(plan.tensors.reduce((a, t) => (isMerged(t) ? Math.max(a, sizeOf(t)) : a), 0), shared.holdBytes);
      await streamShard(ctx, stream);
    } else await copyAndPatchShard(ctx);
  }
}

function streamed(ctx: ShardContext, strategy: MergeOptions['shardStrategy'] = 'auto'): boolean {
  // TIES is bound by its arithmetic (3-5% of cp) and holds two float32 task tensors per merged tensor: streaming's
  // read-ahead would gain nothing there and took peak memory past 3x the largest tensor (bench/RESULTS.md).
  if (strategy === 'auto') return ctx.plan.method !== 'ties' && mergedFraction(ctx) > STREAM_ABOVE;
  return strategy === 'stream'; // checked by mergeAdapters before anything is written
}
