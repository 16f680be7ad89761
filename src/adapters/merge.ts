// Streaming merge of one or more PEFT adapters (LoRA, rsLoRA, DoRA, MoRA types 1 and 6) into a safetensors model.
//
// Everything is validated before the first byte is written; the output is built in a temp sibling folder and renamed
// into place, so a failed or cancelled merge leaves nothing. The output keeps the base's sharding, tensor names and
// (by default) dtypes. When dtypes are kept, a merged tensor has exactly the base tensor's dtype and size, so the
// header and every other byte of the shard stay as they are: each shard is copied whole by the kernel, the copies
// running on the thread pool while this thread computes, and the merged tensors are overwritten in place
// (mergePatch.ts); streaming each shard front to back (mergeStream.ts) is the alternative on request. Memory stays
// around a few tensors.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { dtypeSize, ModelWeights, numel } from '../safetensors';
import { writeDirAtomic } from '../util/atomic';
import { MergeError } from './mergeError';
import { checkArchitecture, checkOutputNotInput, copySideFiles, writeIndex } from './mergeFiles';
import { asMergeError, planMerge, type MergeMethod, type MergeSource, type OutputDtype, type TensorPlan } from './mergePlan';
import { PatchPipeline } from './mergePatch';
import { isMerged, rewriteShard, type ShardContext } from './mergeShard';
import { streamShard, streamState, type StreamState } from './mergeStream';
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
   * How dtype-keeping shards are written: 'auto' (default) and 'patch' copy each shard in the kernel and overwrite
   * its merged tensors (mergePatch.ts); 'stream' writes it front to back through user space (mergeStream.ts; tests,
   * benchmarks, file systems where a kernel copy is slow). The output bytes are the same either way.
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

/**
 * Writes every weight shard into `tmp`, choosing per shard: rewrite (dtype change), streamed, or copy + patch. The
 * copy + patch shards' kernel copies are all queued at once (mergePatch.ts, two at a time), so they run while this
 * thread computes, whichever shard it is on.
 */
async function writeShards(tmp: string, names: string[], shared: ShardShared): Promise<void> {
  const { plan, weights, strategy } = shared;
  const ctxs: ShardContext[] = [];
  for (const [i, shard] of weights.shards.entries()) {
    const target = path.join(tmp, names[i]);
    await fs.mkdir(path.dirname(target), { recursive: true });
    ctxs.push({ ...shared, shard, target, tensors: plan.byShard.get(shard) ?? [] });
  }
  const kept = (ctx: ShardContext) => ctx.tensors.every((t) => t.outDtype === t.info.dtype);
  // Copy + patch unless streaming is asked for: with the copy chain it beat streaming for 12% (LoRA q,v) and 76%
  // (MoRA-6 all-linear) of the bytes merged (bench/RESULTS.md, session 3), streaming's read-ahead took TIES past 3x
  // the largest tensor, and copy-on-write file systems clone the copy for free.
  const how = ctxs.map((ctx) => (!kept(ctx) ? 'rewrite' : strategy === 'stream' ? 'stream' : 'patch'));
  shared.cancelled();
  const patch = new PatchPipeline(weights, ctxs.filter((_, i) => how[i] === 'patch'), shared.holdBytes);
  let stream: StreamState | undefined; // made for the first streamed shard, shared by the others
  try {
    for (const [i, ctx] of ctxs.entries()) {
      shared.cancelled();
      if (how[i] === 'rewrite') await rewriteShard(ctx);
      else if (how[i] === 'stream') {
        const sizeOf = (t: TensorPlan) => t.info.dataOffsets[1] - t.info.dataOffsets[0];
        stream ??= streamState(plan.tensors.reduce((a, t) => (isMerged(t) ? Math.max(a, sizeOf(t)) : a), 0), shared.holdBytes);
        await streamShard(ctx, stream);
      } else await patch.patch(ctx);
    }
    await patch.finish();
  } finally {
    // Every copy and write must end before the temp folder is removed, or they would recreate files in it.
    await patch.close();
  }
}
