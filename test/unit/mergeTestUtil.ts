// Shared fixtures of the merge tests: tiny hand-written base models and adapters in temp folders.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { float32ToBytes, ModelWeights, writeSafetensors, type Dtype } from '../../src/safetensors';
import { defaultAdapterConfig, moraRank, writeAdapter, type AdapterConfig, type AdapterModule } from '../../src/adapters';
import { mergeWasm, setMergeWasm, type MergeWasm } from '../../src/adapters/mergeWasm';
import type { MergeOptions } from '../../src/adapters/merge';
import type { MergeSource } from '../../src/adapters/mergePlan';
import { makeTinyModel, type TinyModelOptions } from '../../src/model/tinyModel';
import type { Rng } from '../../src/util/rng';

export async function tempDir(prefix = 'mora-merge-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface TensorSpec {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  values: number[];
}

/** A model folder with one model.safetensors and a config.json. */
export async function writeBase(dir: string, tensors: TensorSpec[], modelType = 'llama'): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  await writeSafetensors(
    path.join(dir, 'model.safetensors'),
    tensors.map((t) => ({ name: t.name, dtype: t.dtype as Dtype, shape: t.shape, data: float32ToBytes(Float32Array.from(t.values), t.dtype) })),
  );
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ model_type: modelType, torch_dtype: 'float32' }));
  await fs.writeFile(path.join(dir, 'tokenizer.json'), '{"version":"1.0"}');
  return dir;
}

export function loraModule(p: string, A: number[], aShape: number[], B: number[], bShape: number[], magnitude?: number[]): AdapterModule {
  return {
    path: p,
    A: Float32Array.from(A),
    aShape,
    B: Float32Array.from(B),
    bShape,
    magnitude: magnitude ? Float32Array.from(magnitude) : undefined,
  };
}

export function moraModule(p: string, M: number[], rHat: number): AdapterModule {
  return { path: p, A: Float32Array.from(M), aShape: [rHat, rHat], B: Float32Array.from(M), bShape: [rHat, rHat] };
}

export async function writeTestAdapter(dir: string, cfg: Partial<AdapterConfig>, modules: AdapterModule[]): Promise<string> {
  await writeAdapter(dir, defaultAdapterConfig(cfg), modules);
  return dir;
}

/** All tensors of a model folder as float32, by name. */
export async function readAll(dir: string): Promise<Map<string, Float32Array>> {
  const w = await ModelWeights.open(dir);
  try {
    const out = new Map<string, Float32Array>();
    for (const n of w.names()) out.set(n, await w.readFloat32(n));
    return out;
  } finally {
    await w.close();
  }
}

export function assertClose(actual: Float32Array | undefined, expected: number[], tol: number, what = ''): void {
  if (!actual) throw new Error(`${what}: missing`);
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) throw new Error(`${what}[${i}]: ${actual[i]} != ${expected[i]} (tol ${tol})`);
  }
}

/** Entries of a folder that look like leftovers of an atomic write (temp siblings). */
export async function tempLeftovers(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.startsWith('.') && n.includes('.tmp-'));
}

export const exists = (p: string) => fs.stat(p).then(() => true, () => false);

/** sha256 of every file of a folder, by name: equal maps mean byte-identical outputs. */
export async function hashDir(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of (await fs.readdir(dir)).sort()) {
    out.set(name, createHash('sha256').update(await fs.readFile(path.join(dir, name))).digest('hex'));
  }
  return out;
}

// [module, out, in] of a makeTinyModel llama with hidden 48, intermediate 136, 4 heads and 2 KV heads: 48 and 136 are
// not multiples of most r̂ (MoRA-6 bands wrap), and GQA gives v_proj in ≠ out.
const TINY_LLAMA_LINEAR: [string, number, number][] = [['self_attn.q_proj', 48, 48], ['self_attn.v_proj', 24, 48], ['mlp.up_proj', 136, 48], ['mlp.down_proj', 48, 136]];
export const TINY_LLAMA_TARGETS = ['q_proj', 'v_proj', 'up_proj', 'down_proj'];

/** Random LoRA (rank `loraRank`) or MoRA-6 (r = 4) modules for TINY_LLAMA_TARGETS of the given layers. */
export function tinyLlamaModules(rng: Rng, kind: 'lora' | 'mora6', layers: number[], loraRank: number): AdapterModule[] {
  return layers.flatMap((l) => TINY_LLAMA_LINEAR.map(([t, outF, inF]) => {
    const p = `model.layers.${l}.${t}`;
    if (kind === 'lora') {
      const r = loraRank;
      return { path: p, A: rng.normalArray(r * inF, 0.3), aShape: [r, inF], B: rng.normalArray(outF * r, 0.3), bShape: [outF, r] };
    }
    const rHat = moraRank(inF, outF, 4, 6);
    const M = rng.normalArray(rHat * rHat, 0.2);
    return { path: p, A: M, aShape: [rHat, rHat], B: M, bShape: [rHat, rHat] };
  }));
}

/**
 * The merge's WASM kernels, for tests that call them directly whatever MORA_KERNELS says for the rest of the run (the
 * setting is restored at once). Throws where WebAssembly SIMD is missing, since such a test would prove nothing.
 */
export function requireMergeWasm(): MergeWasm {
  const was = setMergeWasm(true);
  const k = mergeWasm();
  setMergeWasm(was);
  if (!k) throw new Error('WebAssembly SIMD is required for these tests');
  return k;
}

/** Runs `fn` with the merge's WASM kernels on or off, restoring the setting afterwards. */
export async function withWasm<T>(on: boolean, fn: () => T | Promise<T>): Promise<T> {
  const was = setMergeWasm(on);
  try {
    return await fn();
  } finally {
    setMergeWasm(was);
  }
}

/**
 * An in-memory source with one r = 2 module 'model.layers.0.mlp.proj' of the given kind for an [outF, inF] weight:
 * LoRA (alpha 3), or MoRA type 1/6 with a random M; for the row-kernel tests that skip the adapter files.
 */
export function projSource(rng: Rng, kind: 'lora' | 'mora1' | 'mora6', weight: number, outF: number, inF: number): MergeSource {
  const r = 2;
  const cfg = defaultAdapterConfig({ r, lora_alpha: 3, target_modules: ['proj'], use_mora: kind !== 'lora', mora_type: kind === 'mora6' ? 6 : 1 });
  const modPath = 'model.layers.0.mlp.proj';
  let module: AdapterModule;
  if (kind === 'lora') {
    module = { path: modPath, A: rng.normalArray(r * inF), aShape: [r, inF], B: rng.normalArray(outF * r), bShape: [outF, r] };
  } else {
    const rHat = moraRank(inF, outF, r, kind === 'mora1' ? 1 : 6);
    const M = rng.normalArray(rHat * rHat);
    module = { path: modPath, A: M, aShape: [rHat, rHat], B: M, bShape: [rHat, rHat] };
  }
  return { adapter: { dir: kind, config: cfg, modules: new Map([[module.path, module]]), saved: new Map() }, weight };
}

/** The whole-merge tests' tiny random LLaMA base (hidden 48, intermediate 136, 4 heads, 2 KV heads, vocab 300). */
export async function tinyLlamaBase(dir: string, opts: Pick<TinyModelOptions, 'layers' | 'seed' | 'dtype'> & Partial<TinyModelOptions>): Promise<string> {
  await makeTinyModel(dir, { arch: 'llama', hidden: 48, intermediate: 136, heads: 4, kvHeads: 2, vocab: 300, ...opts });
  return dir;
}

/** The linear and TIES merges each whole-merge identity test runs: LoRA, MoRA-6, weight −0.5, a weighted sum, TIES. */
export const linearAndTiesCases = (lora: string, mora: string): Omit<MergeOptions, 'out' | 'base'>[] => [
  { adapters: [{ dir: lora }] },
  { adapters: [{ dir: mora }] },
  { adapters: [{ dir: mora, weight: -0.5 }] },
  { adapters: [{ dir: lora, weight: 0.7 }, { dir: mora, weight: 1.3 }] },
  { adapters: [{ dir: mora }, { dir: lora }], method: 'ties', density: 0.5 },
];
