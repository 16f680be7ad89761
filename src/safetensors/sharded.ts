import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { SafetensorsError } from './errors';
import { SafetensorsFile } from './file';
import type { TensorInfo } from './header';
import { findDuplicateKey } from './json';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface SafetensorsIndex {
  /** Tensor name -> shard file name (relative to the index's folder). */
  weightMap: Map<string, string>;
  /** `metadata.total_size` when present (sum of tensor bytes as transformers writes it). */
  totalSize: number | null;
  metadata: Record<string, unknown>;
}

const bad = (p: string, msg: string) => new SafetensorsError('IndexInvalid', `${p}: ${msg}`);

/** Parses model.safetensors.index.json text strictly (object shapes, string shard names, no duplicate keys). */
export function parseIndex(text: string, where = INDEX_FILE): SafetensorsIndex {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad(where, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(where, 'not a JSON object');
  const dup = findDuplicateKey(text);
  if (dup !== null) throw bad(where, `repeats the key '${dup}'`);
  const o = raw as Record<string, unknown>;
  const wm = o.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw bad(where, 'weight_map must be an object');
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string' || shard === '') throw bad(where, `weight_map['${name}'] must be a file name`);
    // Shards live next to the index; a path that climbs out of the folder is refused rather than followed.
    const norm = path.posix.normalize(shard.replace(/\\/g, '/'));
    if (path.posix.isAbsolute(norm) || norm.startsWith('../') || norm === '..') {
      throw bad(where, `weight_map['${name}'] points outside the folder: ${shard}`);
    }
    weightMap.set(name, norm);
  }
  const meta = o.metadata ?? {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw bad(where, 'metadata must be an object');
  const ts = (meta as Record<string, unknown>).total_size;
  let totalSize: number | null = null;
  if (ts !== undefined) {
    if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) throw bad(where, 'metadata.total_size must be a non-negative integer');
    totalSize = ts;
  }
  return { weightMap, totalSize, metadata: meta as Record<string, unknown> };
}

const exists = (p: string) => fs.stat(p).then((s) => s.isFile(), () => false);

/**
 * The weights of a model folder, sharded or not, behind one name -> tensor view. Opens a directory holding
 * model.safetensors.index.json (sharded) or model.safetensors, an index file, or a single .safetensors file.
 * Every shard's header is validated up front; tensor data is read on demand, one tensor at a time.
 */
export class ModelWeights {
  private constructor(
    /** Shard file paths, in index order (one entry for an unsharded model). */
    readonly shards: string[],
    private readonly files: Map<string, SafetensorsFile>,
    private readonly where: Map<string, string>,
    /** The index, when the model is sharded. */
    readonly index: SafetensorsIndex | null,
    readonly indexPath: string | null,
  ) {}

  static async open(dirOrFile: string): Promise<ModelWeights> {
    const st = await fs.stat(dirOrFile).catch(() => null);
    if (!st) throw new SafetensorsError('NoWeights', `${dirOrFile}: no such file or folder`);
    if (st.isFile()) {
      return dirOrFile.endsWith('.index.json') ? ModelWeights.openIndex(dirOrFile) : ModelWeights.openSingle(dirOrFile);
    }
    const idx = path.join(dirOrFile, INDEX_FILE);
    if (await exists(idx)) return ModelWeights.openIndex(idx);
    const single = path.join(dirOrFile, SINGLE_FILE);
    if (await exists(single)) return ModelWeights.openSingle(single);
    // Adapter folders and other single-file checkpoints: accept exactly one .safetensors file.
    const found = (await fs.readdir(dirOrFile)).filter((f) => f.endsWith('.safetensors'));
    if (found.length === 1) return ModelWeights.openSingle(path.join(dirOrFile, found[0]));
    throw new SafetensorsError('NoWeights', `${dirOrFile}: no ${INDEX_FILE} or ${SINGLE_FILE} (found ${found.length} .safetensors files)`);
  }

  private static async openSingle(file: string): Promise<ModelWeights> {
    const f = await SafetensorsFile.open(file);
    const where = new Map(f.names().map((n) => [n, file] as [string, string]));
    return new ModelWeights([file], new Map([[file, f]]), where, null, null);
  }

  private static async openIndex(indexPath: string): Promise<ModelWeights> {
    const index = parseIndex(await fs.readFile(indexPath, 'utf8'), indexPath);
    const dir = path.dirname(indexPath);
    const shardNames = [...new Set(index.weightMap.values())];
    const files = new Map<string, SafetensorsFile>();
    try {
      for (const s of shardNames) {
        const p = path.join(dir, s);
        if (!(await exists(p))) throw new SafetensorsError('IndexMissingShard', `${indexPath}: shard ${s} does not exist`);
        files.set(p, await SafetensorsFile.open(p));
      }
      const where = new Map<string, string>();
      for (const [name, s] of index.weightMap) {
        const p = path.join(dir, s);
        if (!files.get(p)!.has(name)) {
          throw new SafetensorsError('IndexMissingTensor', `${indexPath}: tensor '${name}' is mapped to ${s}, which does not hold it`);
        }
        where.set(name, p);
      }
      return new ModelWeights([...files.keys()], files, where, index, indexPath);
    } catch (err) {
      await Promise.all([...files.values()].map((f) => f.close()));
      throw err;
    }
  }

  /** All tensor names: index order when sharded, file order otherwise. */
  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  /** Path of the shard holding `name`. */
  shardOf(name: string): string {
    const p = this.where.get(name);
    if (p === undefined) throw new SafetensorsError('TensorNotFound', `no tensor named '${name}'`);
    return p;
  }

  /** The open file of one shard (for its header and metadata). */
  file(shard: string): SafetensorsFile {
    const f = this.files.get(shard);
    if (!f) throw new SafetensorsError('TensorNotFound', `no shard ${shard}`);
    return f;
  }

  info(name: string): TensorInfo {
    return this.file(this.shardOf(name)).info(name);
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.file(this.shardOf(name)).readBytes(name);
  }

  readFloat32(name: string): Promise<Float32Array> {
    return this.file(this.shardOf(name)).readFloat32(name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}
