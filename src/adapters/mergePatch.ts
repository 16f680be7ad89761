// Copy + patch for the dtype-keeping shards of a merge, pipelined across shards. Each shard file is copied whole by
// the kernel (fs.copyFile: copy_file_range, or a free clone on copy-on-write file systems) and its merged tensors are
// then overwritten in place. Three things run at once:
// - the copy chain on libuv's thread pool, two shards at a time: shard i + 2's copy starts as soon as shard i's
//   ends, so the kernel copies without a gap while this thread computes;
// - the arithmetic on this thread, tensor after tensor across shard boundaries (one TensorReader reads the next
//   merged tensor ahead, whichever shard it is in);
// - one serial write chain on the pool, overwriting merged tensors in shards whose copy has ended. Overwriting
//   pages the copy just put in the page cache is cheaper than a streamed writer's fresh pages on the benchmark VM.
// A merged tensor whose shard is still being copied waits in memory, up to holdBytes (half the largest tensor) over
// all shards; past that the arithmetic waits for the copy. On failure or cancel no further copy starts, and every
// copy and write in flight ends before the caller removes the temp folder.
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { ModelWeights } from '../safetensors';
import { MergeError } from './mergeError';
import { TensorReader, writeAt } from './mergeFiles';
import type { TensorPlan } from './mergePlan';
import { isMerged, outputBytes, type ShardContext } from './mergeShard';

// Shard copies in flight at once. Two finished a 3-shard 1 GB merge ~10% (LoRA q,v) and ~15% (MoRA-6) sooner than
// one on the 2-vCPU benchmark VM (bench/RESULTS.md, session 3); more would only compete for the same cores.
const copyLanes = 2;

interface PatchShard {
  ctx: ShardContext;
  copy: Promise<void>; // the kernel copy of the whole shard; rejects when it failed or never started
  copied: boolean;
  held: [TensorPlan, Uint8Array][]; // merged before the copy ended
  opened?: Promise<fs.FileHandle>; // after the copy: the output opened for overwriting, held tensors queued
}

export class PatchPipeline {
  private readonly shards = new Map<string, PatchShard>();
  private readonly copies: Promise<void>; // settles once no copy is running or will start
  private readonly reader: TensorReader;
  private stopped = false;
  private heldBytes = 0;
  private writes: Promise<void> = Promise.resolve(); // the serial write chain; rejects from the first failed write on
  private lastWrite: Promise<void> = Promise.resolve(); // this thread's latest write (at most one waits behind it)

  /** Starts the copy chain over `ctxs` (in order) at once. */
  constructor(weights: ModelWeights, ctxs: ShardContext[], private readonly holdBytes: number) {
    // Shard i's copy follows shard i - copyLanes's. A failed or cancelled copy rejects the later links of its lane;
    // the other lane stops at its next link, on the cancel check or once close() has set `stopped`.
    const lanes: Promise<void>[] = Array.from({ length: copyLanes }, () => Promise.resolve());
    for (const [i, ctx] of ctxs.entries()) {
      const prev = lanes[i % copyLanes];
      const shard: PatchShard = { ctx, copied: false, held: [], copy: prev };
      shard.copy = prev.then(async () => {
        if (this.stopped) throw new MergeError('Cancelled', 'merge stopped');
        ctx.cancelled();
        // EXCL (the temp folder is new) also spares libuv's ftruncate(0) of the target, after which ext4 starts the
        // file's writeback at close (auto_da_alloc): that made each copy ~2x slower than cp's (bench/RESULTS.md).
        await fs.copyFile(ctx.shard, ctx.target, fsConstants.COPYFILE_EXCL);
        shard.copied = true;
      });
      shard.copy.catch(() => undefined); // heard by whoever waits for it; a stopped merge waits for none
      this.shards.set(ctx.shard, shard);
      lanes[i % copyLanes] = shard.copy;
    }
    this.copies = Promise.all(lanes.map((l) => l.catch(() => undefined))).then(() => undefined);
    const merged = ctxs.flatMap((c) => c.tensors.filter(isMerged));
    this.reader = new TensorReader(weights, merged, holdBytes);
  }

  /**
   * Computes one shard's merged tensors (its copy may still be running) and queues their writes. Returns without
   * waiting for the copy or the writes, so the next shard's arithmetic follows at once; finish() waits for them.
   */
  async patch(ctx: ShardContext): Promise<void> {
    const shard = this.shards.get(ctx.shard)!;
    for (const t of ctx.tensors) {
      if (!isMerged(t)) continue;
      ctx.cancelled();
      const bytes = await outputBytes(ctx, t, this.reader);
      const [start, end] = t.info.dataOffsets;
      if (bytes.length !== end - start) {
        throw new MergeError('ShapeMismatch', `${t.name}: merged tensor has ${bytes.length} bytes, the base slot ${end - start}`);
      }
      if (!shard.copied && this.heldBytes + bytes.length <= this.holdBytes) {
        shard.held.push([t, bytes]);
        this.heldBytes += bytes.length;
        continue;
      }
      const fh = await this.open(shard);
      // One write of this thread waits at most: the next tensor is computed while this one is written.
      await this.lastWrite;
      this.lastWrite = this.write(shard, fh, t, bytes);
    }
    // Untouched tensors are reported, and held ones written, once the copy ends.
    this.open(shard).catch(() => undefined);
  }

  /** Waits for every copy and write; rejects with the first failure. */
  async finish(): Promise<void> {
    for (const shard of this.shards.values()) await this.open(shard);
    await this.writes;
  }

  /** After a failure elsewhere: starts no further copy and waits for every copy and write in flight. */
  async close(): Promise<void> {
    this.stopped = true;
    await this.copies;
    const handles = await Promise.all([...this.shards.values()].map((s) => s.opened?.catch(() => undefined)));
    await this.writes.catch(() => undefined);
    await Promise.all(handles.map((h) => h?.close()));
    await this.reader.close();
  }

  private open(shard: PatchShard): Promise<fs.FileHandle> {
    shard.opened ??= (async () => {
      await shard.copy;
      // Reported before the output is opened: a progress callback that throws must not leave the handle open.
      for (const t of shard.ctx.tensors) if (!isMerged(t)) shard.ctx.report(t);
      const fh = await fs.open(shard.ctx.target, 'r+');
      for (const [t, bytes] of shard.held.splice(0)) {
        this.write(shard, fh, t, bytes).then(() => (this.heldBytes -= bytes.length), () => undefined);
      }
      return fh;
    })();
    return shard.opened;
  }

  /** Queues an overwrite of t's bytes; the buffer goes back to the reader once written. */
  private write(shard: PatchShard, fh: fs.FileHandle, t: TensorPlan, bytes: Uint8Array): Promise<void> {
    const at = shard.ctx.weights.file(shard.ctx.shard).header.dataStart + t.info.dataOffsets[0];
    this.writes = this.writes.then(async () => {
      await writeAt(fh, bytes, at);
      this.reader.release(bytes);
      shard.ctx.report(t);
    });
    this.writes.catch(() => undefined); // the failure is heard by finish(), or by the next wait on lastWrite
    return this.writes;
  }
}
