// Slabs of the merged tensors whose rows merge independently (LinearRows): a few MB of whole base rows, read at
// their file offset into one of a few recycled buffers, one slab ahead of its use. Merged in place and written back
// to the same offset, they replace whole-tensor buffers (up to 131 MB each, plus the ones held or being written):
// on the benchmark VM first-touch page faults of fresh memory cost more system time than the merge's arithmetic
// (bench/RESULTS.md, "Session 3: slab-wise merged tensors"), and a small recycled buffer stays in the caches.
import { promises as fs } from 'node:fs';
import { readFully, type ModelWeights } from '../safetensors';
import type { TensorPlan } from './mergePlan';
import { SlabMemory } from './mergeSlabWasm';

// Base bytes per slab (at least one row): small enough that the few buffers in use are memory faulted in once and
// reused, large enough that reads and writes stay few (~250 per GB). 1 MB and 16 MB slabs were no faster, and 16 MB
// took ~40% more page faults (bench/RESULTS.md).
const defaultSlabBytes = 4 << 20;
// Slabs read ahead of the one being merged: two keep a read in flight while the previous one is copied out.
const readAhead = 2;
// Spare buffers kept: one computed, two read ahead, two being written, and two held while a shard's copy runs.
const spares = 7;

export interface Slab {
  t: TensorPlan;
  o0: number; // first row
  at: number; // byte offset of the first row in the shard file
  length: number; // bytes of whole rows
}

export class SlabReader {
  readonly slabs: Slab[] = [];
  private readonly first = new Map<string, [number, number]>(); // tensor name -> its slabs [start, end)
  private readonly pending = new Map<number, Promise<Uint8Array>>();
  private readonly handles = new Map<string, Promise<fs.FileHandle>>();
  private readonly size: number; // every buffer's size: the largest slab
  // Slab bytes that may wait for their shard's copy. Holding up to the pipeline's holdBytes (65 MB on the benchmark
  // model) took 32 buffers instead of 5 and ~30 K more page faults; waiting for the copy instead cost more wall time
  // than holding two slabs (in-process MoRA-6, bench/RESULTS.md, "Session 3: slab-wise merged tensors").
  readonly holdBytes: number;
  private free: ArrayBuffer[] = [];
  // Slots in WASM memory where the fused MoRA-6 kernel can merge them in place (mergeSlabWasm.ts), when
  // `kernelScratch` was given and the kernels are on; plain buffers beyond them (or without them).
  readonly memory?: SlabMemory;

  /**
   * The slabs of `tensors` (2-D, in the order they are merged). `kernelScratch` > 0 (mora6ScratchBytes of the
   * largest MoRA-6 module among them) puts the buffers in a SlabMemory.
   */
  constructor(private readonly weights: ModelWeights, tensors: TensorPlan[], slabBytes = defaultSlabBytes, kernelScratch = 0) {
    for (const t of tensors) {
      const [outF] = t.info.shape;
      const [start, end] = t.info.dataOffsets;
      const rowBytes = (end - start) / outF;
      const rows = Math.max(1, Math.floor(slabBytes / rowBytes));
      const from = this.slabs.length;
      const base = weights.file(t.shard).header.dataStart + start;
      for (let o0 = 0; o0 < outF; o0 += rows) {
        this.slabs.push({ t, o0, at: base + o0 * rowBytes, length: Math.min(rows, outF - o0) * rowBytes });
      }
      this.first.set(t.name, [from, this.slabs.length]);
    }
    this.size = this.slabs.reduce((a, s) => Math.max(a, s.length), 0);
    this.holdBytes = 2 * this.size;
    // One slot more than the spares kept: a slab can be read ahead while all the spares are in use.
    if (kernelScratch > 0 && this.size > 0) this.memory = SlabMemory.create(this.size, spares + 1, kernelScratch);
  }

  /** Indices [start, end) of t's slabs in `slabs`. */
  range(t: TensorPlan): [number, number] {
    return this.first.get(t.name)!;
  }

  /** Slab i's base bytes (the caller's until release()); starts reading the next slabs. Slabs are taken in order. */
  take(i: number): Promise<Uint8Array> {
    const bytes = this.pending.get(i) ?? this.read(i);
    this.pending.delete(i);
    for (let j = i + 1; j <= i + readAhead && j < this.slabs.length; j++) {
      if (this.pending.has(j)) continue;
      const p = this.read(j);
      p.catch(() => undefined); // a read nobody takes (the merge failed first) must not count as unhandled
      this.pending.set(j, p);
    }
    return bytes;
  }

  /** Gives a buffer from take() back; the caller must not touch it afterwards. */
  release(bytes: Uint8Array): void {
    if (this.memory?.release(bytes)) return;
    if (this.free.length < spares && !this.free.includes(bytes.buffer as ArrayBuffer)) this.free.push(bytes.buffer as ArrayBuffer);
  }

  private async read(i: number): Promise<Uint8Array> {
    const s = this.slabs[i];
    const slot = this.memory?.acquire();
    const out = slot ? slot.subarray(0, s.length) : new Uint8Array(this.free.pop() ?? new ArrayBuffer(this.size), 0, s.length);
    const file = this.weights.file(s.t.shard);
    let fh = this.handles.get(s.t.shard);
    if (!fh) this.handles.set(s.t.shard, (fh = fs.open(file.path, 'r')));
    await readFully(await fh, out, s.at, file.path);
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pending.values()].map((p) => p.catch(() => undefined)));
    const handles = await Promise.all([...this.handles.values()].map((h) => h.catch(() => undefined)));
    await Promise.all(handles.map((h) => h?.close()));
  }
}
