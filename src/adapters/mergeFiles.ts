// The files around the weights of a merge: output naming, side files (config, tokenizer, generation config),
// the shard index, and the architecture check against the adapter's recorded base model.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { SafetensorsIndex } from '../safetensors';
import { MergeError } from './mergeError';
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
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
      throw new MergeError('OutputIsInput', `output ${out} would replace the input ${input}`);
    }
  }
}
