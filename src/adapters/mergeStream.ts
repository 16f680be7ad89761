// The streamed shard writer of a dtype-keeping merge (shardStrategy 'stream'; the default is copy + patch, which was
// faster on the benchmark VM for 12% and 76% merged once its copies were pipelined, bench/RESULTS.md session 3). The
// output shard is the base shard with the merged tensors' bytes replaced (same header, names, dtypes
// and offsets), so it is written front to back at the base's own offsets: the header and untouched tensors are read
// and written through in large chunks, merged tensors are read whole into a buffer the row kernels then overwrite in
// place. Copy + patch would first copy those merged bytes in the kernel only to overwrite them; streaming moves
// every byte through user space once instead (one read, one write).
//
// Reads, the arithmetic and writes overlap: reads run ahead on libuv's thread pool, the arithmetic runs on this
// thread, and one writer (mergeWriter.ts) issues the writes one syscall at a time on the pool, so on two cores the
// page-cache copies proceed while the kernels run.
import { promises as fs } from 'node:fs';
import { readFully } from '../safetensors';
import type { TensorPlan } from './mergePlan';
import { checkSlot, computeBytes, isMerged, type ShardContext } from './mergeShard';
import { SerialWriter } from './mergeWriter';

/** Read/write size for untouched bytes: large enough that syscalls cost nothing, small enough to pipeline. */
export const STREAM_CHUNK = 8 << 20;
let chunkBytes = STREAM_CHUNK;

/** Sets the chunk size (tests use a few KB to cut tiny shards into many pieces); returns the previous one. */
export function setStreamChunk(bytes: number): number {
  if (!(Number.isInteger(bytes) && bytes > 0)) throw new RangeError(`stream chunk must be a positive integer, not ${bytes}`);
  const was = chunkBytes;
  chunkBytes = bytes;
  return was;
}

interface Segment {
  start: number; // file byte range [start, end)
  end: number;
  tensor?: TensorPlan; // a merged tensor, computed between read and write
  finished: TensorPlan[]; // tensors complete once this segment is written (progress)
  data: Promise<Uint8Array>;
  resolve: (b: Uint8Array) => void;
  reject: (e: unknown) => void;
}

/** The shard as file ranges in order: merged tensors whole, everything else in chunk-aligned pieces. */
function segments(ctx: ShardContext, chunk: number): Segment[] {
  const { dataStart, fileSize } = ctx.weights.file(ctx.shard).header;
  const sorted = [...ctx.tensors].sort((a, b) => a.info.dataOffsets[0] - b.info.dataOffsets[0]);
  const segs: Segment[] = [];
  const add = (start: number, end: number, tensor?: TensorPlan) => {
    let resolve!: (b: Uint8Array) => void;
    let reject!: (e: unknown) => void;
    const data = new Promise<Uint8Array>((res, rej) => ((resolve = res), (reject = rej)));
    // Observed here too: a read that fails after the merge loop has already stopped must not become unhandled.
    data.catch(() => undefined);
    data.catch(() => undefined); // a read nobody awaits (the merge failed first) must not count as unhandled
    segs.push({ start, end, tensor, finished: [], data, resolve, reject });
  };
  const copy = (start: number, end: number) => {
    // Cut at multiples of `chunk` in the file so most reads and writes cover whole pages.
    for (let s = start; s < end; ) {
      const e = Math.min(end, (Math.floor(s / chunk) + 1) * chunk);
      add(s, e);
      s = e;
    }
  };
  let at = 0;
  for (const t of sorted) {
    if (!isMerged(t)) continue;
    const [s, e] = t.info.dataOffsets;
    copy(at, dataStart + s);
    add(dataStart + s, dataStart + e, t);
    at = dataStart + e;
  }
  copy(at, fileSize);
  // Each tensor is reported once the segment holding its last byte is written.
  let k = 0;
  for (const t of sorted) {
    const end = dataStart + t.info.dataOffsets[1];
    while (k < segs.length - 1 && segs[k].end < end) k++;
    segs[k].finished.push(t);
  }
  return segs;
}

/**
 * Spare buffers for the stream, so big buffers are reused instead of piling up for the garbage collector (and
 * re-faulting fresh pages). A request takes the oldest spare of at least its size and at most twice it, so chunks
 * and the few tensor sizes of a model each keep their own buffers; new buffers are at least `min` bytes. Spares
 * beyond `keep` bytes are dropped, oldest first.
 */
export class BufferPool {
  private free: ArrayBuffer[] = []; // oldest first
  constructor(
    private readonly min: number,
    private readonly keep: number,
  ) {}

  take(size: number): Uint8Array {
    // Small pieces (norm weights between merged tensors) get their own size: rounding each up to a chunk would hold
    // megabytes per few kilobytes in flight, outside the budgets, which count real sizes.
    const want = size > this.min / 2 ? Math.max(size, this.min) : size;
    const i = this.free.findIndex((b) => b.byteLength >= want && b.byteLength <= 2 * want);
    const buffer = i >= 0 ? this.free.splice(i, 1)[0] : new ArrayBuffer(want);
    return new Uint8Array(buffer, 0, size);
  }

  give(bytes: Uint8Array): void {
    if (!(bytes.buffer instanceof ArrayBuffer) || this.free.includes(bytes.buffer)) return;
    this.free.push(bytes.buffer);
    let kept = this.free.reduce((a, b) => a + b.byteLength, 0);
    while (kept > this.keep && this.free.length > 1) kept -= this.free.shift()!.byteLength;
  }
}

/** What the streamed shards of one merge share: the read-ahead budgets and the spare buffers. */
export interface StreamState {
  chunk: number;
  budget: number; // merged-tensor bytes read ahead or waiting to be written
  copyBudget: number; // untouched bytes in flight
  pool: BufferPool;
}

/**
 * Sizes the stream for a merge. The merged-tensor budget holds the tensor being computed and the previous one being
 * written (the next one's read starts when that write ends, well before the arithmetic does), bounded by the
 * model's largest tensor (holdBytes is half of it): TIES adds two float32 task tensors per merged tensor, and peak
 * memory must stay within the 3x. Untouched bytes keep four chunks in flight. The spares cover the buffers
 * in flight across tensors of different sizes (a layer's attention and MLP weights), so steady state allocates
 * nothing.
 */
export function streamState(largestMerged: number, holdBytes: number, chunk = chunkBytes): StreamState {
  const budget = Math.max(chunk, Math.min(2 * largestMerged, 2 * holdBytes));
  const copyBudget = 4 * chunk;
  return { chunk, budget, copyBudget, pool: new BufferPool(chunk, budget + copyBudget) };
}

/**
 * A shard's I/O on libuv's thread pool: untouched chunks are read in parallel and written back through the single
 * writer, merged tensors go through the same writer; finish() waits for every queued write.
 */
function shardIo(pool: BufferPool, src: fs.FileHandle, dst: fs.FileHandle, path: string) {
  const writer = new SerialWriter(dst);
  return {
    copy: async (s: Segment) => {
      const buf = pool.take(s.end - s.start);
      await readFully(src, buf, s.start, path);
      await writer.write(s.start, buf);
      pool.give(buf);
    },
    write: (position: number, bytes: Uint8Array) => writer.write(position, bytes).then(() => bytes),
    finish: () => writer.drain(),
  };
}

/**
 * Streams one dtype-keeping shard to ctx.target in two lanes that share the thread pool. Untouched bytes: chunks
 * read and written back at the same offset, several in flight, so the pool keeps copying while this thread is busy
 * with a tensor's arithmetic (a chunk's write is queued when its read completes). Merged tensors: read ahead in
 * order up to `budget` bytes (a tensor larger than that still goes through alone), computed here in place, written
 * one at a time. On any failure both lanes stop and every read and write in flight finishes before this returns,
 * so the caller's temp folder can be removed safely.
 */
export async function streamShard(ctx: ShardContext, state: StreamState): Promise<void> {
  const file = ctx.weights.file(ctx.shard);
  const { chunk, budget, copyBudget, pool } = state;
  const segs = segments(ctx, chunk);
  const merges = segs.filter((s) => s.tensor);
  let held = 0; // merged-tensor bytes read or being read and not yet written
  let copying = 0; // untouched bytes read or being read and not yet written
  let stop = false;
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  const room = () => new Promise<void>((r) => waiters.push(r));
  // The first failure of either lane rejects this and stops both: the merge loop races its reads against it.
  let fail!: (err: unknown) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const failOnce = (err: unknown) => {
    if (!stop) fail(err);
    stop = true;
    wake();
  };
  const inFlight = new Set<Promise<void>>();
  const src = await fs.open(file.path, 'r');
  let dst: fs.FileHandle | undefined;
  let reading: Promise<void> = Promise.resolve();
  let copyLane: Promise<void> = Promise.resolve();
  let io: ReturnType<typeof shardIo> | undefined;
  let completed = false;
  try {
    dst = await fs.open(ctx.target, 'wx');
    const out = (io = shardIo(pool, src, dst, file.path));
    copyLane = (async () => {
      for (const s of segs) {
        if (s.tensor) continue;
        const size = s.end - s.start;
        while (!stop && copying > 0 && copying + size > copyBudget) await room();
        if (stop) return;
        try {
          // A shard with few merged tensors spends most of its time here, so cancel is heard per chunk too.
          ctx.cancelled();
        } catch (err) {
          failOnce(err);
          return;
        }
        copying += size;
        const op = out
          .copy(s)
          .then(() => {
            copying -= size;
            wake();
            for (const t of s.finished) ctx.report(t);
          })
          .catch(failOnce)
          .finally(() => inFlight.delete(op));
        inFlight.add(op);
      }
      while (inFlight.size > 0) await Promise.all(inFlight);
    })();
    reading = (async () => {
      for (const s of merges) {
        try {
          const size = s.end - s.start;
          while (!stop && held > 0 && held + size > budget) await room();
          if (stop) return;
          held += size;
          const buf = pool.take(size);
          await readFully(src, buf, s.start, file.path);
          s.resolve(buf);
        } catch (err) {
          // Also an allocation failure: the merge loop waiting on this segment, and the copy lane, must hear of it.
          s.reject(err);
          failOnce(err);
          return;
        }
      }
    })();
    for (const s of merges) {
      ctx.cancelled();
      const raw = await Promise.race([s.data, failed]);
      const bytes = computeBytes(ctx, s.tensor!, raw);
      checkSlot(s.tensor!, bytes);
      if (bytes.buffer !== raw.buffer) pool.give(raw);
      // Queued behind the untouched chunks' writes; it proceeds on the thread pool while the next tensor is computed.
      const op = out
        .write(s.start, bytes)
        .then((back) => {
          pool.give(back);
          held -= s.end - s.start;
          wake();
          for (const t of s.finished) ctx.report(t);
        })
        .catch(failOnce)
        .finally(() => inFlight.delete(op));
      inFlight.add(op);
    }
    await Promise.race([copyLane, failed]);
    await Promise.race([Promise.all(inFlight), failed]);
    ctx.cancelled();
    completed = true;
  } finally {
    // Nothing may still write into the temp folder once the caller removes it.
    stop = true;
    wake();
    await reading;
    await copyLane;
    await Promise.all(inFlight);
    await io?.finish();
    // Both handles are closed whatever happens; a close error is reported only when nothing failed before it.
    const closed = await Promise.allSettled([dst?.close(), src.close()]);
    const closeError = closed.find((r) => r.status === 'rejected');
    if (closeError && completed) throw closeError.reason;
  }
}
