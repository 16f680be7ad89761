// Benchmark: `mora spectrum` end to end, as a user runs it, on a MoRA r=8 adapter for a LLaMA-2-7B-shaped model
// (32 layers × 7 modules, random M): node start-up, reading the 160 MB adapter and the base headers, the structured σ
// on the bundled worker threads (dist/spectrumKernelWorker.js), metrics and the printed table.
// spectrumBench.ts times the σ computation alone from source (tsx workers start slower than the bundled ones).
//
// The base model is a real safetensors file whose data section is sparse (truncate): only its header is ever read, so
// the 13 GB of BF16 weights cost no disk and no time to generate.
// Usage: npm run build && node --import tsx bench/spectrumCliBench.ts [--type 6|1] [--runs 5] [--dir /tmp/mora-spectrum-7b]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultAdapterConfig, moraRank, writeAdapter, type AdapterModule, type MoraType } from '../src/adapters';
import { LLAMA7B_LAYERS, LLAMA7B_MODULES, randomM } from './llama7b';

const { values } = parseArgs({ options: { type: { type: 'string', default: '6' }, runs: { type: 'string', default: '5' }, dir: { type: 'string', default: path.join(os.tmpdir(), 'mora-spectrum-7b') } } });
const type = Number(values.type) as MoraType;
const runs = Number(values.runs);
const root = path.resolve(values.dir!);
const cli = path.join(__dirname, '..', 'dist', 'cli.js');
const MODULES = LLAMA7B_MODULES;
const LAYERS = LLAMA7B_LAYERS;

/** model.safetensors with the 224 projection weights as BF16 [out, in]: header written, data left sparse. */
async function writeSparseBase(dir: string): Promise<void> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (let l = 0; l < LAYERS; l++) {
    for (const [name, inF, outF] of MODULES) {
      const bytes = inF * outF * 2;
      header[`model.layers.${l}.${name}.weight`] = { dtype: 'BF16', shape: [outF, inF], data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // the data section starts 8-aligned
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  await fs.writeFile(file, Buffer.concat([prefix, Buffer.from(json, 'latin1')]));
  await fs.truncate(file, 8 + json.length + offset);
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: LAYERS }));
}

async function writeMoraAdapter(dir: string, base: string): Promise<void> {
  const modules: AdapterModule[] = [];
  for (let l = 0; l < LAYERS; l++) {
    for (const [name, inF, outF] of MODULES) {
      const rHat = moraRank(inF, outF, 8, type);
      const M = randomM(rHat, l * 16 + modules.length); // the same M as spectrumBench.ts
      modules.push({ path: `model.layers.${l}.${name}`, A: M, aShape: [rHat, rHat], B: M, bShape: [rHat, rHat] });
    }
  }
  const cfg = defaultAdapterConfig({ r: 8, lora_alpha: 16, use_mora: true, mora_type: type, target_modules: MODULES.map(([n]) => n.split('.')[1]), base_model_name_or_path: base });
  await writeAdapter(dir, cfg, modules);
}

async function main(): Promise<void> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run 'npm run build' first`);
  const base = path.join(root, 'base');
  const adapter = path.join(root, `mora${type}-r8`);
  if (!existsSync(path.join(base, 'model.safetensors'))) await writeSparseBase(base);
  if (!existsSync(adapter)) await writeMoraAdapter(adapter, base);
  const adapterMB = (await fs.stat(path.join(adapter, 'adapter_model.safetensors'))).size / 2 ** 20;
  console.log(`MoRA type ${type} r=8, ${LAYERS * MODULES.length} modules, adapter ${adapterMB.toFixed(0)} MB; ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const res = spawnSync(process.execPath, [cli, 'spectrum', '--adapter', adapter, '--base', base], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const ms = performance.now() - t;
    if (res.status !== 0) throw new Error(`mora spectrum exited ${res.status}: ${res.stderr}`);
    const rows = res.stdout.split('\n').filter((line) => line.includes('_proj')).length;
    if (rows !== LAYERS * MODULES.length) throw new Error(`expected ${LAYERS * MODULES.length} module rows, got ${rows}`);
    times.push(ms);
    console.log(`run ${i + 1}: ${(ms / 1000).toFixed(2)} s wall (node start-up, read, σ of all ${rows} modules, metrics, table)`);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`median ${(sorted[sorted.length >> 1] / 1000).toFixed(2)} s, best ${(sorted[0] / 1000).toFixed(2)} s; load after ${os.loadavg()[0].toFixed(2)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
