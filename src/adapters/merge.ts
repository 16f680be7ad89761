// Streaming merge of one or more PEFT adapters (LoRA, rsLoRA, DoRA, MoRA types 1 and 6) into a safetensors model.
//
// Everything is validated before the first byte is written; the output is built in a temp sibling folder and renamed
// into place, so a failed or cancelled merge leaves nothing. The output keeps the base's sharding, tensor names and
// (by default) dtypes. When dtypes are kept, every shard is first copied whole (the kernel's copy, the fastest path)
// and only the merged tensors are overwritten in place: the header and every other byte are already right because a
// merged tensor has exactly the base tensor's dtype and size. Memory stays around one tensor and its float32 copies.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  bytesToFloat32, dtypeSize, ModelWeights, numel, safetensorsOrder, type Dtype,
} from '../safetensors';
import { writeDirAtomic } from '../util/atomic';
import { MergeError } from './mergeError';
import {
  checkArchitecture, checkOutputNotInput, copySideFiles, TensorReader, writeAt, writeIndex, writeShard, type ShardTensor,
} from './mergeFiles';
import { asMergeError, planMerge, type MergeMethod, type MergePlan, type MergeSource, type OutputDtype, type TensorPlan } from './mergePlan';
import { convertBytes, encodeChecked, mergeTensorBytes, mergeTensorF32 } from './mergeTensor';
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

const floatOut = (d: Dtype): d is 'F32' | 'F16' | 'BF16' | 'F64' => d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F64';

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
        for (const [i, shard] of weights.shards.entries()) {
          cancelled();
          const target = path.join(tmp, shardNames[i]);
          await fs.mkdir(path.dirname(target), { recursive: true });
          const tensors = plan.byShard.get(shard) ?? [];
          const ctx: ShardContext = { plan, sources, weights, shard, target, tensors, cancelled, report, holdBytes };
          if (tensors.every((t) => t.outDtype === t.info.dtype)) await copyAndPatchShard(ctx);
          else await rewriteShard(ctx);
        }
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

const isMerged = (t: TensorPlan) => t.contributions.length > 0 || t.replacement !== undefined;

interface ShardContext {
  plan: MergePlan;
  sources: MergeSource[];
  weights: ModelWeights;
  shard: string;
  target: string;
  tensors: TensorPlan[];
  cancelled: () => void;
  report: (t: TensorPlan) => void;
  holdBytes: number; // merged bytes that may wait in memory for a shard copy to finish
}

/**
 * The output bytes of one tensor: merged, replaced, converted, or the base bytes untouched. The raw buffer goes back
 * to the reader as soon as it is not part of the result; a result that is the raw buffer (in place) is released by
 * the caller once written.
 */
async function outputBytes(ctx: ShardContext, t: TensorPlan, reader: TensorReader): Promise<Uint8Array> {
  const raw = await reader.take(t);
  const out = computeBytes(ctx, t, raw);
  if (out.buffer !== raw.buffer) reader.release(raw);
  return out;
}

function computeBytes(ctx: ShardContext, t: TensorPlan, raw: Uint8Array): Uint8Array {
  if (!isMerged(t) && t.outDtype === t.info.dtype) return raw;
  if (!floatOut(t.outDtype)) throw new MergeError('UnsupportedDtype', `cannot write ${t.name} as ${t.outDtype}`);
  if (t.replacement) return encodeChecked(Float32Array.from(t.replacement.data), t.outDtype, `saved tensor for ${t.name}`);
  if (t.contributions.length > 0) {
    const what = `merged ${t.name}`;
    // Row kernels where they apply (in place for a kept dtype), else whole-tensor float32 arithmetic.
    return mergeTensorBytes(ctx.plan, t, ctx.sources, raw, t.outDtype, what) ??
      encodeChecked(mergeTensorF32(ctx.plan, t, ctx.sources, raw), t.outDtype, what);
  }
  const what = `converted ${t.name}`;
  return convertBytes(raw, t.info.dtype, t.outDtype, what) ?? convertChunked(raw, t.info.dtype, t.outDtype, what);
}

/**
 * A dtype change of an untouched tensor, in 1M-element pieces so the float32 copy never exists whole. It is
 * still checked: f32 -> f16 can overflow.
 */
function convertChunked(raw: Uint8Array, from: Dtype, to: 'F32' | 'F16' | 'BF16' | 'F64', what: string): Uint8Array {
  const inSize = dtypeSize(from);
  const outSize = dtypeSize(to);
  const n = raw.length / inSize;
  const out = new Uint8Array(n * outSize);
  const chunk = 1 << 20;
  for (let s = 0; s < n; s += chunk) {
    const e = Math.min(n, s + chunk);
    const x = bytesToFloat32(raw.subarray(s * inSize, e * inSize), from);
    out.set(encodeChecked(x, to, what), s * outSize);
  }
  return out;
}

/**
 * Same dtypes: copy the shard file whole (in the kernel, on libuv's thread pool), then overwrite each merged tensor's
 * byte range in place. While the copy runs, the first merged tensors are computed on this thread and held until it
 * ends, up to `ctx.holdBytes` (half the largest tensor), so copying and arithmetic overlap. Afterwards the next
 * tensor's read and the previous tensor's write overlap with each tensor's arithmetic.
 */
async function copyAndPatchShard(ctx: ShardContext): Promise<void> {
  let copied = false;
  const copy = fs.copyFile(ctx.shard, ctx.target).then(() => {
    copied = true;
  });
  const merged = ctx.tensors.filter(isMerged);
  const reader = new TensorReader(ctx.weights, merged, ctx.holdBytes);
  const dataStart = ctx.weights.file(ctx.shard).header.dataStart;
  const held: [TensorPlan, Uint8Array][] = [];
  let heldBytes = 0;
  let fh: fs.FileHandle | undefined;
  let writing: Promise<void> = Promise.resolve();
  const write = async (t: TensorPlan, bytes: Uint8Array) => {
    const [start, end] = t.info.dataOffsets;
    if (bytes.length !== end - start) {
      throw new MergeError('ShapeMismatch', `${t.name}: merged tensor has ${bytes.length} bytes, the base slot ${end - start}`);
    }
    await writeAt(fh!, bytes, dataStart + start);
    reader.release(bytes);
    ctx.report(t);
  };
  const afterCopy = async () => {
    await copy;
    if (fh) return;
    for (const t of ctx.tensors) if (!isMerged(t)) ctx.report(t);
    fh = await fs.open(ctx.target, 'r+');
    for (const [t, bytes] of held.splice(0)) await write(t, bytes);
  };
  try {
    for (const t of merged) {
      ctx.cancelled();
      const bytes = await outputBytes(ctx, t, reader);
      if (!copied && heldBytes + bytes.length <= ctx.holdBytes) {
        held.push([t, bytes]);
        heldBytes += bytes.length;
        continue;
      }
      await afterCopy();
      // One write in flight: it proceeds on the thread pool while the next tensor is computed.
      await writing;
      writing = write(t, bytes);
    }
    await afterCopy();
    await writing;
  } catch (err) {
    // The copy and any write must finish before the temp folder is removed, or they would recreate the file.
    await copy.catch(() => undefined);
    await writing.catch(() => undefined);
    throw err;
  } finally {
    await fh?.close();
    await reader.close();
  }
}

/** A dtype change: the layout changes, so the shard is re-serialised one tensor at a time. */
async function rewriteShard(ctx: ShardContext): Promise<void> {
  const tensors: ShardTensor[] = ctx.tensors.map((t) => ({
    name: t.name,
    dtype: t.outDtype,
    shape: t.info.shape,
    bytes: numel(t.info.shape) * dtypeSize(t.outDtype),
    data: async () => {
      ctx.cancelled();
      const bytes = await outputBytes(ctx, t, reader);
      ctx.report(t);
      return bytes;
    },
    written: (bytes) => reader.release(bytes),
    big: Math.max(numel(t.info.shape) * dtypeSize(t.outDtype), t.info.dataOffsets[1] - t.info.dataOffsets[0]) > ctx.holdBytes,
  }));
  // Read ahead in the order the shard is written.
  const byName = new Map(ctx.tensors.map((t) => [t.name, t]));
  const reader = new TensorReader(ctx.weights, safetensorsOrder(tensors).map((w) => byName.get(w.name)!), ctx.holdBytes);
  try {
    await writeShard(ctx.target, tensors, ctx.weights.file(ctx.shard).header.metadata);
  } finally {
    await reader.close();
  }
}
