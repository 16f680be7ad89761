// Copy + patch for the dtype-keeping shards of a merge, pipelined across shards. Each shard file is copied whole by
// the kernel (fs.copyFile: copy_file_range, or a free clone on copy-on-write file systems) and its merged tensors are
// then overwritten in place. Three things run at once:
// - the copy chain on libuv's thread pool, two shards at a time: shard i + 2's copy starts as soon as shard i's
//   ends, so the kernel copies without a gap while this thread computes;
// - the arithmetic on this thread, tensor after tensor across shard boundaries. Linear merges whose rows are
//   independent (LinearRows: LoRA, MoRA 1/6, weighted sums) go a slab of rows at a time through a few recycled
//   buffers (mergeSlabs.ts), the next slab read ahead; other merged tensors (TIES, DoRA, replacements) whole, one
//   TensorReader reading the next ahead, whichever shard it is in;
// - one serial write chain on the pool, overwriting merged slabs and tensors in shards whose copy has ended.
//   Overwriting pages the copy just put in the page cache is cheaper than a streamed writer's fresh pages on the
//   benchmark VM.
// A merged tensor whose shard is still being copied waits in memory, up to holdBytes (half the largest tensor) over
// all shards, slabs only two slabs' worth; past that the arithmetic waits for the copy. On failure or cancel no
// further copy starts, and every copy and write in flight ends before the caller removes the temp folder.
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { ModelWeights } from '../safetensors';
import { MergeError } from './mergeError';
import { TensorReader, writeAt } from './mergeFiles';
import type { TensorPlan } from './mergePlan';
import { SlabReader } from './mergeSlabs';
import { fusedScratchBytes } from './mergeSlabWasm';
import { checkSlot, isMerged, outputBytes, type ShardContext } from './mergeShard';
import { LinearRows, linearRowsApply } from './mergeRows';

// Shard copies in flight at once. Two finished a 3-shard 1 GB merge ~10% (LoRA q,v) and ~15% (MoRA-6) sooner than
// one on the 2-vCPU benchmark VM (bench/RESULTS.md, session 3); more would only compete for the same cores.
const copyLanes = 2;
// Overwrites in flight at once (see `writes`).
const writeLanes = 2;

interface PatchShard {
  ctx: ShardContext;
  copy: Promise<void>; // the kernel copy of the whole shard; rejects when it failed or never started
  copied: boolean;
  held: Held[]; // merged before the copy ended
  opened?: Promise<fs.FileHandle>; // after the copy: the output opened for overwriting, held tensors queued
}

interface Held {
  at: number; // byte offset in the shard file
  bytes: Uint8Array;
  done: () => void; // after the write: gives the buffer back, reports a finished tensor
}

export class PatchPipeline {
  private readonly shards = new Map<string, PatchShard>();
  private readonly copies: Promise<void>; // settles once no copy is running or will start
  private readonly reader: TensorReader; // whole merged tensors (TIES, DoRA, replacements, other layouts)
  private readonly slabs: SlabReader; // merged tensors that LinearRows covers, a few rows at a time
  private readonly slabbed: Set<TensorPlan>;
  private stopped = false;
  private heldBytes = 0;
  // Two serial write chains, used in turn: one write's memcpy into the page cache runs while the next is issued (one
  // chain left the arithmetic waiting on the pool). Each rejects from its first failed write on.
  private readonly writes: Promise<void>[] = Array.from({ length: writeLanes }, () => Promise.resolve());
  private turn = 0; // the chain the next write goes to
  private readonly issued: Promise<void>[] = Array.from({ length: writeLanes }, () => Promise.resolve()); // this thread's latest write per chain

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
    // Slab by slab where rows merge independently in place (an empty tensor has no slab to report it by).
    const slabbed = (t: TensorPlan) => t.outDtype === t.info.dtype && t.info.shape.every((d) => d > 0) &&
      linearRowsApply(ctxs[0].plan, t, ctxs[0].sources);
    this.slabbed = new Set(merged.filter(slabbed));
    const slabbedTensors = merged.filter((t) => this.slabbed.has(t));
    this.slabs = new SlabReader(weights, slabbedTensors, undefined, fusedScratchBytes(slabbedTensors, ctxs[0]?.sources ?? []));
    this.reader = new TensorReader(weights, merged.filter((t) => !this.slabbed.has(t)), holdBytes);
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
      if (this.slabbed.has(t)) {
        await this.patchSlabs(shard, t);
        continue;
      }
      const bytes = await outputBytes(ctx, t, this.reader);
      checkSlot(t, bytes);
      const at = ctx.weights.file(ctx.shard).header.dataStart + t.info.dataOffsets[0];
      await this.put(shard, { at, bytes, done: () => (this.reader.release(bytes), ctx.report(t)) });
    }
    // Untouched tensors are reported, and held ones written, once the copy ends.
    this.open(shard).catch(() => undefined);
  }

  /**
   * One tensor slab by slab, in row order: slab i + 1 is read while slab i is merged in place and slab i - 1
   * written. The tensor is reported once its last slab is on disk.
   */
  private async patchSlabs(shard: PatchShard, t: TensorPlan): Promise<void> {
    const { ctx } = shard;
    const [from, end] = this.slabs.range(t);
    let rows: LinearRows | undefined;
    for (let i = from; i < end; i++) {
      const bytes = await this.slabs.take(i);
      rows ??= LinearRows.create(ctx.plan, t, ctx.sources, t.outDtype, `merged ${t.name}`)!;
      const { o0, at } = this.slabs.slabs[i];
      const last = i === end - 1;
      const done = () => (this.slabs.release(bytes), last && ctx.report(t));
      // Slabs wait for the copy rather than pile up: held ones would be fresh memory (SlabReader.holdBytes says why).
      await this.put(shard, { at, bytes: rows.merge(bytes, o0, undefined, this.slabs.memory), done }, this.slabs.holdBytes);
    }
  }

  /** Holds merged bytes until the shard's copy ends (within `limit` bytes held), else queues their write. */
  private async put(shard: PatchShard, h: Held, limit = this.holdBytes): Promise<void> {
    if (!shard.copied && this.heldBytes + h.bytes.length <= limit) {
      shard.held.push(h);
      this.heldBytes += h.bytes.length;
      return;
    }
    const fh = await this.open(shard);
    // At most one write of this thread per chain waits: the next slab is computed while these are written.
    const lane = this.turn;
    await this.issued[lane];
    this.issued[lane] = this.write(fh, h, lane);
  }

  /** Waits for every copy and write; rejects with the first failure. */
  async finish(): Promise<void> {
    for (const shard of this.shards.values()) await this.open(shard);
    await Promise.all(this.writes);
  }

  /** After a failure elsewhere: starts no further copy and waits for every copy and write in flight. */
  async close(): Promise<void> {
    this.stopped = true;
    await this.copies;
    const handles = await Promise.all([...this.shards.values()].map((s) => s.opened?.catch(() => undefined)));
    await Promise.all(this.writes.map((w) => w.catch(() => undefined)));
    await Promise.all(handles.map((h) => h?.close()));
    await this.reader.close();
    await this.slabs.close();
  }

  private open(shard: PatchShard): Promise<fs.FileHandle> {
    shard.opened ??= (async () => {
      await shard.copy;
      // Reported before the output is opened: a progress callback that throws must not leave the handle open.
      for (const t of shard.ctx.tensors) if (!isMerged(t)) shard.ctx.report(t);
      const fh = await fs.open(shard.ctx.target, 'r+');
      for (const h of shard.held.splice(0)) {
        this.write(fh, h).then(() => (this.heldBytes -= h.bytes.length), () => undefined);
      }
      return fh;
    })();
    return shard.opened;
  }

  /** Queues an overwrite of h's bytes on a write chain (the next in turn by default), then h.done(). */
  private write(fh: fs.FileHandle, h: Held, lane = this.turn): Promise<void> {
    this.turn = (lane + 1) % writeLanes;
    const w = (this.writes[lane] = this.writes[lane].then(async () => {
      await writeAt(fh, h.bytes, h.at);
      h.done();
    }));
    w.catch(() => undefined); // the failure is heard by finish(), or by the next wait on that chain
    return w;
  }
}
