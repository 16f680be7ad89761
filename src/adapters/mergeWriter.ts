// One writer per output file. Buffered writes to one file serialise on the inode lock in the kernel, and on a small
// VM a second writer thread spins on that lock (perf: rwsem_spin_on_owner ~15% of a streamed merge's CPU) while
// slowing the copy it waits for. So writes are queued here and issued one syscall at a time, in file order of the
// queued buffers, each syscall a writev of at most 512 KB: the kernel sizes page-cache folios by the write's length,
// and on the benchmark VM writes of 2 MB or more (2 MB folios) were at times 3-5x slower in the kernel's copy than
// the same bytes in 512 KB writes (bench/RESULTS.md, "Session 2: streamed shards").
import type { promises as fs } from 'node:fs';

interface Pending {
  position: number;
  bytes: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

// Bounds of one batch of queued buffers (Linux takes at most 1024 buffers per writev), and of one syscall.
const maxBuffers = 1024;
const maxBytes = 256 << 20;
const maxWrite = 512 << 10;

export class SerialWriter {
  private queue: Pending[] = [];
  private busy: Promise<void> | undefined;
  private failure: { err: unknown } | undefined;

  constructor(private readonly fh: fs.FileHandle) {}

  /** Writes all of `bytes` at `position`; resolves once they are in the file (the buffer may then be reused). */
  write(position: number, bytes: Uint8Array): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.err);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ position, bytes, resolve, reject });
      this.busy ??= this.pump();
    });
  }

  /** Resolves when nothing is queued or in flight (errors are reported to the writes themselves). */
  async drain(): Promise<void> {
    while (this.busy) await this.busy;
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      this.queue.sort((a, b) => a.position - b.position);
      // The run of contiguous buffers from the lowest queued position.
      let n = 1;
      let end = this.queue[0].position + this.queue[0].bytes.length;
      let size = this.queue[0].bytes.length;
      while (n < this.queue.length && n < maxBuffers && this.queue[n].position === end && size + this.queue[n].bytes.length <= maxBytes) {
        end += this.queue[n].bytes.length;
        size += this.queue[n].bytes.length;
        n++;
      }
      const batch = this.queue.splice(0, n);
      try {
        await this.writeRun(batch.map((p) => p.bytes), batch[0].position);
        for (const p of batch) p.resolve();
      } catch (err) {
        // Sticky: everything queued now or later fails with the first error.
        this.failure ??= { err };
        for (const p of [...batch, ...this.queue.splice(0)]) p.reject(this.failure.err);
      }
    }
    this.busy = undefined;
  }

  /** writev of ≤ maxWrite bytes at a time until every byte of `buffers` is written (a call may take fewer). */
  private async writeRun(buffers: Uint8Array[], position: number): Promise<void> {
    const rest = buffers.filter((b) => b.length > 0);
    while (rest.length > 0) {
      const iov: Uint8Array[] = [];
      for (let i = 0, room = maxWrite; i < rest.length && room > 0; i++) {
        iov.push(rest[i].subarray(0, room));
        room -= iov[iov.length - 1].length;
      }
      const { bytesWritten } = await this.fh.writev(iov, position);
      if (bytesWritten <= 0) throw new Error(`writev wrote ${bytesWritten} bytes at ${position}`);
      position += bytesWritten;
      let skip = bytesWritten;
      while (rest.length > 0 && skip >= rest[0].length) skip -= rest.shift()!.length;
      if (skip > 0) rest[0] = rest[0].subarray(skip);
    }
  }
}
