import { promises as fs } from 'node:fs';
import { SafetensorsError } from './errors';
import { parseHeaderJson, parseHeaderLength, type SafetensorsHeader, type TensorInfo } from './header';
import { bytesToFloat32 } from './convert';

// Node caps one read at 2 GiB; larger tensors are read in pieces into the same buffer.
const MAX_READ = 1 << 30;

/** Fills `out` from `position` with positioned reads; a file that ends early is a ReadFailed error naming `path`. */
export async function readFully(fh: fs.FileHandle, out: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < out.length) {
    const len = Math.min(MAX_READ, out.length - done);
    const { bytesRead } = await fh.read(out, done, len, position + done);
    if (bytesRead === 0) throw new SafetensorsError('ReadFailed', `${path}: file ended at byte ${position + done} while reading`);
    done += bytesRead;
  }
}

async function readHeaderFrom(fh: fs.FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  if (size < 8) throw new SafetensorsError('HeaderTooSmall', `${path}: file is ${size} bytes, shorter than the 8-byte header length`);
  const prefix = new Uint8Array(8);
  await readFully(fh, prefix, 0, path);
  const n = parseHeaderLength(prefix, size);
  const json = new Uint8Array(n);
  await readFully(fh, json, 8, path);
  return parseHeaderJson(json, size);
}

function withPath(err: unknown, path: string): unknown {
  if (err instanceof SafetensorsError && !err.message.startsWith(path)) err.message = `${path}: ${err.message}`;
  return err;
}

/** Reads and validates only the 8 + N header bytes; the data buffer is never touched. */
export async function readHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await fs.open(path, 'r');
  try {
    return await readHeaderFrom(fh, path);
  } catch (err) {
    throw withPath(err, path);
  } finally {
    await fh.close();
  }
}

/**
 * An open .safetensors file. Tensors are read one at a time with positioned reads, so memory stays at one tensor
 * however large the file is. Concurrent reads on one file are safe.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    private fh: fs.FileHandle | null,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await fs.open(path, 'r');
    try {
      return new SafetensorsFile(path, await readHeaderFrom(fh, path), fh);
    } catch (err) {
      await fh.close();
      throw withPath(err, path);
    }
  }

  /** Tensor names in file (offset) order. */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError('TensorNotFound', `${this.path}: no tensor named '${name}'`);
    return info;
  }

  get metadata(): Record<string, string> | null {
    return this.header.metadata;
  }

  /** The tensor's raw little-endian bytes in a fresh, 0-offset buffer (safe to view as a typed array). */
  async readBytes(name: string): Promise<Uint8Array> {
    const [start, end] = this.info(name).dataOffsets;
    if (!this.fh) throw new SafetensorsError('ReadFailed', `${this.path}: file is closed`);
    const out = new Uint8Array(end - start);
    await readFully(this.fh, out, this.header.dataStart + start, this.path);
    return out;
  }

  /**
   * The raw bytes of `names` (in file order, so each batch is one contiguous span) with one positioned read per
   * `batchBytes` instead of one per tensor: adapters hold hundreds of small tensors, and a read per tensor cost more
   * in thread-pool round trips than in copying. Each view is 8-aligned only where its offset in the span is.
   */
  async readSpans(names: string[], batchBytes = 64 << 20): Promise<Map<string, Uint8Array>> {
    if (!this.fh) throw new SafetensorsError('ReadFailed', `${this.path}: file is closed`);
    const out = new Map<string, Uint8Array>();
    const ordered = [...names].sort((a, b) => this.info(a).dataOffsets[0] - this.info(b).dataOffsets[0]);
    for (let i = 0; i < ordered.length;) {
      const from = this.info(ordered[i]).dataOffsets[0];
      let j = i;
      let end = from;
      // Extend the batch while the next tensor starts where this one ends and the batch stays under batchBytes.
      while (j < ordered.length) {
        const [s, e] = this.info(ordered[j]).dataOffsets;
        if (s !== end || (j > i && e - from > batchBytes)) break;
        end = e;
        j++;
      }
      const span = new Uint8Array(end - from);
      await readFully(this.fh, span, this.header.dataStart + from, this.path);
      for (let k = i; k < j; k++) {
        const [s, e] = this.info(ordered[k]).dataOffsets;
        out.set(ordered[k], span.subarray(s - from, e - from));
      }
      i = j;
    }
    return out;
  }

  /** The tensor converted to float32, whatever its stored dtype. */
  async readFloat32(name: string): Promise<Float32Array> {
    return bytesToFloat32(await this.readBytes(name), this.info(name).dtype);
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close();
  }
}
