/**
 * PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors` with keys
 * `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight` (DoRA: `.lora_magnitude_vector`), plus full
 * weights of `modules_to_save` under `base_model.model.<name>`. Writes go through a temp folder and one rename.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LITTLE_ENDIAN, SafetensorsFile, bytesToFloat32, float32ToBytes, writeSafetensors, type Dtype, type TensorToWrite } from '../safetensors';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic';
import { checkModule, type AdapterModule, type DeltaOptions } from './deltaWeight';
import { AdapterError } from './errors';
import { parseAdapterConfig, serializeAdapterConfig, type AdapterConfig } from './peftConfig';
import { adapterKeyToModule, moduleToAdapterKey, PEFT_PREFIX, type AdapterPart } from './targets';

export const CONFIG_FILE = 'adapter_config.json';
export const WEIGHTS_FILE = 'adapter_model.safetensors';

/** A full tensor saved beside the adapter (modules_to_save, trained biases), keyed by its base-model name. */
export interface SavedTensor {
  shape: number[];
  data: Float32Array;
}

export interface Adapter {
  dir: string;
  config: AdapterConfig;
  /** Keyed by module path. */
  modules: Map<string, AdapterModule>;
  /** Keyed by base-model tensor name, e.g. `lm_head.weight`. */
  saved: Map<string, SavedTensor>;
}

export interface ReadOptions {
  /** Base weight shape of a module (as stored in the checkpoint), to check MoRA r̂ and LoRA in/out when known. */
  baseShape?: (modulePath: string) => number[] | undefined;
  /** Per-layer fan_in_fan_out override (e.g. true for GPT-2 Conv1D), as in deltaWeight. */
  deltaOptions?: (modulePath: string) => DeltaOptions;
}

const READABLE: ReadonlySet<Dtype> = new Set<Dtype>(['F32', 'F16', 'BF16', 'F64']);

const isEnoent = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

/** Reads and validates adapter_config.json alone (cheap: no tensors). */
export async function readAdapterConfig(dir: string): Promise<AdapterConfig> {
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (isEnoent(err)) throw new AdapterError('ConfigMissing', `${dir}: no ${CONFIG_FILE}`);
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AdapterError('ConfigInvalid', `${file}: not valid JSON (${(err as Error).message})`);
  }
  return parseAdapterConfig(json);
}

/** True when PEFT would save `name` (a base-model tensor name) as a modules_to_save / bias tensor of this config. */
function isSavedTensorName(cfg: AdapterConfig, name: string): boolean {
  if (cfg.bias !== 'none' && name.endsWith('.bias')) return true;
  // PEFT excludes modules_to_save from targeting with `(^|.*\.)m($|\..*)`; the same test finds their tensors.
  const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return (cfg.modules_to_save ?? []).some((m) => new RegExp(`(^|.*\\.)${escape(m)}($|\\..*)`).test(name));
}

/** Reads an adapter folder; every module is checked against the config and, when known, its base weight shape. */
export async function readAdapter(dir: string, opts: ReadOptions = {}): Promise<Adapter> {
  const config = await readAdapterConfig(dir);
  const file = path.join(dir, WEIGHTS_FILE);
  let st: SafetensorsFile;
  try {
    st = await SafetensorsFile.open(file);
  } catch (err) {
    if (!isEnoent(err)) throw err;
    const hasBin = await fs.stat(path.join(dir, 'adapter_model.bin')).then(() => true, () => false);
    throw new AdapterError('WeightsMissing', `${dir}: no ${WEIGHTS_FILE}${hasBin ? ' (adapter_model.bin pickles are not read; convert to safetensors)' : ''}`);
  }
  const parts = new Map<string, Partial<Record<AdapterPart, RawPart>>>();
  const saved = new Map<string, SavedTensor>();
  try {
    for (const key of st.names()) {
      const info = st.info(key);
      if (!READABLE.has(info.dtype)) throw new AdapterError('BadDtype', `${file}: tensor '${key}' has dtype ${info.dtype}, expected a float type`);
      const where = adapterKeyToModule(key);
      if (where) {
        const slot = parts.get(where.path) ?? {};
        // PEFT versions differ on whether the DoRA magnitude keeps its ".weight"; a file with both is ambiguous.
        if (slot[where.part]) throw new AdapterError('DuplicateKey', `${file}: module ${where.path} has two '${where.part}' tensors (second: '${key}')`);
        slot[where.part] = { key, dtype: info.dtype, shape: [...info.shape] };
        parts.set(where.path, slot);
      } else if (!(key.startsWith(PEFT_PREFIX) && isSavedTensorName(config, key.slice(PEFT_PREFIX.length)))) {
        throw new AdapterError('UnknownKey', `${file}: tensor '${key}' is not a LoRA/MoRA/DoRA part nor a modules_to_save weight`);
      }
    }
    // Every tensor's bytes in a few large reads, once the names are known to be valid.
    const raw = await st.readSpans(st.names());
    for (const slot of parts.values()) for (const p of Object.values(slot)) p.raw = raw.get(p.key);
    for (const key of st.names()) {
      if (adapterKeyToModule(key)) continue;
      saved.set(key.slice(PEFT_PREFIX.length), { shape: [...st.info(key).shape], data: bytesToFloat32(raw.get(key)!, st.info(key).dtype) });
    }
  } finally {
    await st.close();
  }

  const modules = new Map<string, AdapterModule>();
  for (const [modPath, p] of parts) {
    const where = `${file}: module ${modPath}`;
    let A = decoded(p.lora_A);
    let B: Decoded | undefined;
    if (config.use_mora) {
      // peft-mora stores M as lora_A and an identical lora_B; either alone is enough. Equal bytes are the same
      // tensor without decoding lora_B (the usual case); otherwise the decoded values are compared.
      if (A && p.lora_B && !sameBytes(p.lora_A!, p.lora_B) && !sameTensor(A, decoded(p.lora_B)!)) {
        throw new AdapterError('MoraMatrixMismatch', `${where}: MoRA lora_A and lora_B differ`);
      }
      A = A ?? decoded(p.lora_B);
      B = A;
    } else B = decoded(p.lora_B);
    if (!A || !B) throw new AdapterError('TensorMissing', `${where}: ${A ? 'lora_B' : 'lora_A'}.weight is missing`);
    if (p.lora_magnitude_vector && !config.use_dora) {
      throw new AdapterError('UnknownKey', `${where}: lora_magnitude_vector present but use_dora is false`);
    }
    const m: AdapterModule = { path: modPath, A: A.data, aShape: A.shape, B: B.data, bShape: B.shape };
    if (p.lora_magnitude_vector) {
      if (p.lora_magnitude_vector.shape.length !== 1) {
        throw new AdapterError('ShapeMismatch', `${where}: lora_magnitude_vector must be 1-D, got [${p.lora_magnitude_vector.shape.join(', ')}]`);
      }
      m.magnitude = decoded(p.lora_magnitude_vector)!.data;
    }
    checkModule(config, m, opts.baseShape?.(modPath), opts.deltaOptions?.(modPath));
    modules.set(modPath, m);
  }
  return { dir, config, modules, saved };
}

// A tensor of the adapter file before decoding; `raw` is a view into one of readSpans' batch buffers.
interface RawPart {
  key: string;
  dtype: Dtype;
  shape: number[];
  raw?: Uint8Array;
}

interface Decoded {
  data: Float32Array;
  shape: number[];
}

/** float32 values of a part: an aligned little-endian F32 part is viewed in place (its batch buffer lives on with it). */
function decoded(p: RawPart | undefined): Decoded | undefined {
  if (!p) return undefined;
  const raw = p.raw!;
  const view = p.dtype === 'F32' && LITTLE_ENDIAN && raw.byteOffset % 4 === 0;
  return { data: view ? new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4) : bytesToFloat32(raw, p.dtype), shape: p.shape };
}

/** Same dtype, shape and bytes: the same tensor (a bytewise compare, no decoding). */
function sameBytes(a: RawPart, b: RawPart): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]) &&
    Buffer.compare(a.raw!, b.raw!) === 0;
}

function sameTensor(a: { data: Float32Array; shape: number[] }, b: { data: Float32Array; shape: number[] }): boolean {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  for (let i = 0; i < a.data.length; i++) if (!Object.is(a.data[i], b.data[i])) return false;
  return true;
}

export interface WriteOptions {
  /** Swap out an existing folder (checkpoints); otherwise an existing folder is an error and is left untouched. */
  replace?: boolean;
  /** Storage dtype of adapter tensors; F32 by default. */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Full tensors for modules_to_save, keyed by base-model name (stored as `base_model.model.<name>`). */
  saved?: Map<string, SavedTensor>;
  /** Extra safetensors `__metadata__` entries (format "pt" is always written). */
  metadata?: Record<string, string>;
}

/** Writes a PEFT adapter folder atomically: the folder appears complete or not at all. */
export async function writeAdapter(dir: string, config: AdapterConfig, modules: AdapterModule[], opts: WriteOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const cfg = parseAdapterConfig(JSON.parse(serializeAdapterConfig(config))); // validates and detaches
  const tensors: TensorToWrite[] = [];
  const seen = new Set<string>();
  for (const m of modules) {
    if (seen.has(m.path)) throw new AdapterError('ShapeMismatch', `module ${m.path} is listed twice`);
    seen.add(m.path);
    checkModule(cfg, m);
    if (cfg.use_mora && !sameTensor({ data: m.A, shape: m.aShape }, { data: m.B, shape: m.bShape })) {
      throw new AdapterError('MoraMatrixMismatch', `module ${m.path}: MoRA A and B must be the same matrix`);
    }
    tensors.push({ name: moduleToAdapterKey(m.path, 'lora_A'), dtype, shape: m.aShape, data: float32ToBytes(m.A, dtype) });
    // For MoRA the same M goes under lora_B too, as peft-mora's state dict has it (lora_B is lora_A).
    tensors.push({ name: moduleToAdapterKey(m.path, 'lora_B'), dtype, shape: m.bShape, data: float32ToBytes(m.B, dtype) });
    if (cfg.use_dora) {
      tensors.push({ name: moduleToAdapterKey(m.path, 'lora_magnitude_vector'), dtype, shape: [m.magnitude!.length], data: float32ToBytes(m.magnitude!, dtype) });
    }
  }
  for (const [name, t] of opts.saved ?? []) {
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new AdapterError('ShapeMismatch', `saved tensor ${name}: data does not match its shape`);
    tensors.push({ name: PEFT_PREFIX + name, dtype, shape: t.shape, data: float32ToBytes(t.data, dtype) });
  }
  await writeDirAtomic(
    dir,
    async (tmp) => {
      await writeFileAtomic(path.join(tmp, CONFIG_FILE), serializeAdapterConfig(config));
      await writeSafetensors(path.join(tmp, WEIGHTS_FILE), tensors, opts.metadata);
    },
    { replace: opts.replace },
  );
}
