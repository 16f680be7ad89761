// Inputs the in-host tests share, made with the project's own core (not through the commands under test) so that a
// broken command cannot also break the reference it is compared with. Everything lives in the workspace's
// `fixtures/` folder and is created once per run.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultAdapterConfig, moraRank, writeAdapter, type AdapterModule } from '../../../src/adapters';
import { makeTinyModel } from '../../../src/model/tinyModel';
import { ModelWeights } from '../../../src/safetensors';
import { Rng } from '../../../src/util/rng';
import { repoRoot, workspaceDir } from './util';

// The tiny llama: 2 layers, hidden 64, 4 heads -> q/k/v/o [64, 64], gate/up [176, 64], down [64, 176].
export const tinyOptions = { arch: 'llama', hidden: 64, layers: 2, heads: 4, vocab: 320, seed: 7 } as const;
export const tinyLinearTypes = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export function fixturesDir(): string {
  return join(workspaceDir(), 'fixtures');
}

const once = new Map<string, Promise<string>>();
function memo(key: string, make: () => Promise<string>): Promise<string> {
  if (!once.has(key)) once.set(key, make());
  return once.get(key)!;
}

export function tinyModel(): Promise<string> {
  return memo('tiny', async () => {
    const dir = join(fixturesDir(), 'tiny-llama');
    await mkdir(fixturesDir(), { recursive: true });
    if (!existsSync(dir)) await makeTinyModel(dir, tinyOptions);
    return dir;
  });
}

// A MoRA type-6 adapter on q_proj and v_proj with small seeded M (PEFT initialises M to zero, which would make a
// merge indistinguishable from a copy): r = 8 gives r̂ = floor(sqrt((64+64)·8)+0.5) = 32, M [32, 32].
export function moraAdapter(): Promise<string> {
  return memo('adapter', async () => {
    const dir = join(fixturesDir(), 'adapter-mora');
    if (existsSync(dir)) return dir;
    const base = await tinyModel();
    const cfg = defaultAdapterConfig({
      r: 8, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], use_mora: true, mora_type: 6,
      base_model_name_or_path: base,
    });
    const rng = new Rng(11);
    const modules: AdapterModule[] = [];
    for (let layer = 0; layer < tinyOptions.layers; layer++) {
      for (const name of ['q_proj', 'v_proj']) {
        const rHat = moraRank(64, 64, 8, 6);
        const M = Float32Array.from({ length: rHat * rHat }, () => 0.02 * rng.normal());
        const path = `model.layers.${layer}.self_attn.${name}`;
        modules.push({ path, A: M, aShape: [rHat, rHat], B: M.slice(), bShape: [rHat, rHat] });
      }
    }
    await writeAdapter(dir, cfg, modules);
    return dir;
  });
}

// A LoRA adapter (r = 4, alpha = 8) on v_proj and o_proj, to merge together with the MoRA one:
// A [4, 64], B [64, 4], both nonzero so that ΔW = (alpha / r)·B·A is not zero.
export function loraAdapter(): Promise<string> {
  return memo('lora', async () => {
    const dir = join(fixturesDir(), 'adapter-lora');
    if (existsSync(dir)) return dir;
    const base = await tinyModel();
    const cfg = defaultAdapterConfig({ r: 4, lora_alpha: 8, target_modules: ['v_proj', 'o_proj'], base_model_name_or_path: base });
    const rng = new Rng(12);
    const draw = (n: number) => Float32Array.from({ length: n }, () => 0.05 * rng.normal());
    const modules: AdapterModule[] = [];
    for (let layer = 0; layer < tinyOptions.layers; layer++) {
      for (const name of ['v_proj', 'o_proj']) {
        const path = `model.layers.${layer}.self_attn.${name}`;
        modules.push({ path, A: draw(4 * 64), aShape: [4, 64], B: draw(64 * 4), bShape: [64, 4] });
      }
    }
    await writeAdapter(dir, cfg, modules);
    return dir;
  });
}

// Every tensor of a model folder as F32, for equality checks between two merges.
export async function readAllTensors(dir: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const w = await ModelWeights.open(dir);
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const name of w.names()) out.set(name, { shape: w.info(name).shape, data: await w.readFloat32(name) });
    return out;
  } finally {
    await w.close();
  }
}

// Runs the built CLI with the host's own runtime: Node under code-server, Electron-as-Node under test-electron.
export function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'dist', 'cli.js'), ...args], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

// Lists a folder recursively (relative paths), to prove that a failed command wrote nothing.
export function listTree(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? [`${prefix}${e.name}/`, ...listTree(join(dir, e.name), `${prefix}${e.name}/`)] : [`${prefix}${e.name}`],
  );
}
