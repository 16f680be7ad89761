// The files around the weights of a merge: output naming, side files (config, tokenizer, generation config),
// the shard index, and the architecture check against the adapter's recorded base model.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { encodeHeader, readFully, safetensorsOrder, type Dtype, type ModelWeights, type SafetensorsIndex } from '../safetensors';
import { MergeError } from './mergeError';
import { SerialWriter } from './mergeWriter';
import type { OutputDtype, TensorPlan } from './mergePlan';
import type { Adapter } from './peftAdapter';

/** Default output folder name; `${base}` and `${adapter}` are folder base names. */
export const DEFAULT_OUTPUT_PATTERN = '${base}-merged-${adapter}';

/** Expands the output pattern; the folder lands next to the (first) adapter. Several adapters join with '+'. */
export function defaultOutputDir(baseDir: string, adapterDirs: string[], pattern = DEFAULT_OUTPUT_PATTERN): string {
  const base = path.basename(path.resolve(baseDir)).replace(/\.safetensors$/, '');
  const adapter = adapterDirs.map((d) => path.basename(path.resolve(d))).join('+');
  const name = pattern.replace(/\$\{base\}/g, base).replace(/\$\{adapter\}/g, adapter);
  if (name.trim() === '' || /\$\{/.test(name)) {
    throw new MergeError('BadOption', `output pattern '${pattern}' must use only \${base} and \${adapter}`);
  }
  return path.resolve(path.dirname(path.resolve(adapterDirs[0])), name);
}

// Weights in any format are produced by the merge (safetensors) or would be stale (pickles, GGUF, ONNX, ...).
const weightFile = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|gguf|onnx|ot|npz|index\.json)$/i;

const torchDtypeNames: Record<Exclude<OutputDtype, 'keep'>, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/**
 * Copies config, tokenizer, generation and other non-weight files of the base folder (top level only). With a
 * dtype change, config.json's torch_dtype is updated to match the new weights. Returns the copied names.
 */
export async function copySideFiles(baseDir: string, outDir: string, dtype: OutputDtype): Promise<string[]> {
  const copied: string[] = [];
  for (const e of await fs.readdir(baseDir, { withFileTypes: true })) {
    if (!e.isFile() || e.name.startsWith('.') || weightFile.test(e.name)) continue;
    const from = path.join(baseDir, e.name);
    const to = path.join(outDir, e.name);
    if (e.name === 'config.json' && dtype !== 'keep') {
      const cfg = JSON.parse(await fs.readFile(from, 'utf8')) as Record<string, unknown>;
      if ('torch_dtype' in cfg) cfg.torch_dtype = torchDtypeNames[dtype];
      if ('dtype' in cfg) cfg.dtype = torchDtypeNames[dtype];
      await fs.writeFile(to, JSON.stringify(cfg, null, 2) + '\n');
    } else {
      await fs.copyFile(from, to);
    }
    copied.push(e.name);
  }
  return copied;
}

/** Writes the shard index for the output: same weight_map, metadata kept, total_size recomputed for the new dtypes. */
export async function writeIndex(file: string, index: SafetensorsIndex, tensors: TensorPlan[], sizeOf: (t: TensorPlan) => number): Promise<void> {
  const totalSize = tensors.reduce((a, t) => a + sizeOf(t), 0);
  const json = {
    metadata: { ...index.metadata, total_size: totalSize },
    weight_map: Object.fromEntries(index.weightMap),
  };
  await fs.writeFile(file, JSON.stringify(json, null, 2) + '\n');
}

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v: unknown = JSON.parse(await fs.readFile(file, 'utf8'));
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The adapter's `base_model_name_or_path` when it names a local model folder that exists (absolute, or relative to
 * the adapter folder or the working directory); undefined for hub ids and missing folders.
 */
export async function localBaseOf(adapterDir: string, recorded: string | null | undefined): Promise<string | undefined> {
  if (!recorded) return undefined;
  const candidates = path.isAbsolute(recorded) ? [recorded] : [path.resolve(adapterDir, recorded), path.resolve(recorded)];
  for (const c of candidates) {
    const st = await fs.stat(c).catch(() => null);
    if (st?.isDirectory()) return c;
  }
  return undefined;
}

/**
 * Refuses an adapter whose recorded local base model has another model_type than the base being merged into.
 * Hub ids cannot be checked here; planMerge catches those adapters when none of their modules exist.
 */
export async function checkArchitecture(baseDir: string, adapter: Adapter): Promise<void> {
  const baseCfg = await readJson(path.join(baseDir, 'config.json'));
  const recordedDir = await localBaseOf(adapter.dir, adapter.config.base_model_name_or_path);
  if (!baseCfg || !recordedDir) return;
  const recordedCfg = await readJson(path.join(recordedDir, 'config.json'));
  const a = recordedCfg?.model_type;
  const b = baseCfg.model_type;
  if (typeof a === 'string' && typeof b === 'string' && a !== b) {
    throw new MergeError(
      'ArchitectureMismatch',
      `${adapter.dir}: trained on ${recordedDir} (model_type ${a}) but the base model is ${b}`,
    );
  }
}

/** Refuses an output folder that is, or contains, one of the inputs: a forced replace would delete it. */
export function checkOutputNotInput(out: string, inputs: string[]): void {
  for (const input of inputs) {
    const rel = path.relative(path.resolve(out), path.resolve(input));
    // A child named '..x' is inside too: only a first segment of exactly '..' climbs out.
    const outside = rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel);
    if (!outside) {
      throw new MergeError('OutputIsInput', `output ${out} would replace the input ${input}`);
    }
  }
}

/**
 * Reads tensors one step ahead of their use, into recycled buffers. When tensor i is taken, tensor i + 1's read
 * starts on libuv's thread pool and overlaps with i's arithmetic (only tensors up to `limit` bytes are read ahead).
 * Buffers given back with release() are reused for later reads, so the big tensors do not pile up in memory while
 * the garbage collector catches up with them.
 */
export class TensorReader {
  private readonly pending = new Map<string, Promise<Uint8Array>>();
  private readonly next = new Map<string, TensorPlan>();
  private readonly handles = new Map<string, Promise<fs.FileHandle>>();
  private free: ArrayBuffer[] = [];
  private readonly age = new WeakMap<ArrayBuffer, number>(); // reads since a spare buffer was released

  constructor(
    private readonly weights: ModelWeights,
    order: TensorPlan[],
    private readonly limit: number,
  ) {
    order.forEach((t, i) => {
      if (i + 1 < order.length) this.next.set(t.name, order[i + 1]);
    });
  }

  /** The tensor's raw bytes (a fresh or recycled buffer that belongs to the caller until release()). */
  take(t: TensorPlan): Promise<Uint8Array> {
    const bytes = this.pending.get(t.name) ?? this.read(t);
    this.pending.delete(t.name);
    const n = this.next.get(t.name);
    if (n && !this.pending.has(n.name) && n.info.dataOffsets[1] - n.info.dataOffsets[0] <= this.limit) {
      const p = this.read(n);
      p.catch(() => undefined); // a read nobody takes (the merge failed first) must not count as unhandled
      this.pending.set(n.name, p);
    }
    return bytes;
  }

  /** Gives a buffer from take() back for reuse; the caller must not touch it afterwards. */
  release(bytes: Uint8Array): void {
    if (!(bytes.buffer instanceof ArrayBuffer) || this.free.includes(bytes.buffer)) return;
    this.free.push(bytes.buffer);
    this.age.set(bytes.buffer, 0);
    // A few spare buffers cover the reads in flight; more would only hold memory.
    if (this.free.length > 3) this.free.sort((a, b) => b.byteLength - a.byteLength).pop();
  }

  private async read(t: TensorPlan): Promise<Uint8Array> {
    const [start, end] = t.info.dataOffsets;
    const size = end - start;
    // Best fit among the spare buffers, else a new one; spares unused for a few reads are dropped.
    let best = -1;
    this.free.forEach((b, i) => {
      if (b.byteLength >= size && (best < 0 || b.byteLength < this.free[best].byteLength)) best = i;
    });
    const buffer = best >= 0 ? this.free.splice(best, 1)[0] : new ArrayBuffer(size);
    for (const b of this.free) this.age.set(b, (this.age.get(b) ?? 0) + 1);
    this.free = this.free.filter((b) => this.age.get(b)! <= 2);
    const out = new Uint8Array(buffer, 0, size);
    const file = this.weights.file(t.shard);
    let fh = this.handles.get(t.shard);
    if (!fh) this.handles.set(t.shard, (fh = fs.open(file.path, 'r')));
    const handle = await fh;
    await readFully(handle, out, file.header.dataStart + start, file.path);
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pending.values()].map((p) => p.catch(() => undefined)));
    const handles = await Promise.all([...this.handles.values()].map((h) => h.catch(() => undefined)));
    await Promise.all(handles.map((h) => h?.close()));
  }
}

/** Positioned write of all of `bytes`. */
export async function writeAt(fh: fs.FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const r = await fh.write(bytes, written, bytes.length - written, position + written);
    written += r.bytesWritten;
  }
}

export interface ShardTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  bytes: number;
  data: () => Promise<Uint8Array>;
  // Instead of data(): the bytes as consecutive pieces, each produced once the write before the one before it has
  // ended (one piece is written while the next is made), so a tensor never exists whole in its new dtype.
  pieces?: () => AsyncIterable<Uint8Array>;
  written?: (data: Uint8Array) => void; // called once `data` (or a piece) is on disk
  big?: boolean; // wait for the previous write before producing this one, so two big buffers are not alive at once
}

/**
 * Streams one output shard into the merge's temp folder, byte-identical to writeSafetensors (its safetensorsOrder
 * and encodeHeader). Unlike writeSafetensors it does not fsync each shard: the whole folder appears by one rename,
 * as on the dtype-keeping path. Each tensor's write overlaps with the next tensor's provider. Writes go through
 * SerialWriter in ≤ 512 KB syscalls: with whole-tensor writes (up to 131 MB) a MoRA-6 → f16 merge spent 1.7–1.9 s in
 * the kernel against 1.0–1.3 s (bench/RESULTS.md, "Session 3: dtype-changing merges"; mergeWriter.ts says why).
 */
export async function writeShard(file: string, tensors: ShardTensor[], metadata: Record<string, string> | null): Promise<void> {
  const order = safetensorsOrder(tensors);
  const header = encodeHeader(order, metadata);
  const fh = await fs.open(file, 'wx');
  const writer = new SerialWriter(fh);
  let writing: Promise<void> = Promise.resolve();
  try {
    await writer.write(0, header);
    let at = header.length;
    for (const t of order) {
      if (t.pieces) {
        let length = 0;
        for await (const piece of t.pieces()) {
          await writing;
          writing = writer.write(at + length, piece).then(() => t.written?.(piece));
          length += piece.length;
        }
        if (length !== t.bytes) throw new MergeError('ShapeMismatch', `${t.name}: ${length} bytes for a ${t.bytes}-byte slot`);
        at += t.bytes;
        continue;
      }
      if (t.big) await writing;
      const data = await t.data();
      if (data.length !== t.bytes) throw new MergeError('ShapeMismatch', `${t.name}: ${data.length} bytes for a ${t.bytes}-byte slot`);
      await writing;
      writing = writer.write(at, data).then(() => t.written?.(data));
      at += t.bytes;
    }
    await writing;
  } finally {
    await writing.catch(() => undefined);
    await fh.close();
  }
}
