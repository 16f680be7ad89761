// Shared helpers for the transformer, adapter-layer and backend tests: model folders with large-ish random weights
// (the generator's std 0.02 makes activations so small that a wrong forward pass could still agree to 1e-4).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { float32ToBytes, writeSafetensors, type Dtype } from '../../src/safetensors';
import { tinyModelLayout, type TinyModelOptions } from '../../src/model/tinyModel';
import { Rng } from '../../src/util/rng';

export interface TestModelOptions extends Partial<TinyModelOptions> {
  arch: 'llama' | 'qwen2' | 'gpt2';
  std?: number; // weight std; default 1/sqrt(hidden) so activations stay O(1)
  dtype?: 'F32' | 'F16' | 'BF16';
  shards?: number; // > 1 writes model-0000i-of-0000n.safetensors + index.json
  configPatch?: Record<string, unknown>; // merged into config.json (e.g. rope_scaling)
}

/** Writes config.json and safetensors with N(0, std²) matrices, norm gains ~N(1, 0.2²), biases ~N(0, 0.1²). */
export async function writeTestModel(dir: string, o: TestModelOptions): Promise<void> {
  const { specs, config } = tinyModelLayout(o);
  const hidden = o.hidden ?? 64;
  const std = o.std ?? 1 / Math.sqrt(hidden);
  const rng = new Rng(o.seed ?? 7);
  const dtype: Dtype = o.dtype ?? 'F32';
  const tensors = specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = s.init === 'norm' ? rng.normalArray(n, 0.2, 1) : s.init === 'bias' ? rng.normalArray(n, 0.1) : rng.normalArray(n, std);
    return { name: s.name, dtype, shape: s.shape, data: float32ToBytes(v, dtype as 'F32') };
  });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, ...o.configPatch }, null, 2));
  const shards = o.shards ?? 1;
  if (shards === 1) {
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    return;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-0000${s + 1}-of-0000${shards}.safetensors`;
    const part = tensors.filter((_, i) => i % shards === s);
    for (const t of part) weightMap[t.name] = file;
    await writeSafetensors(path.join(dir, file), part);
  }
  await writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

export async function tmpDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
