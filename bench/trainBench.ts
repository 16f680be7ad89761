// Training-step throughput of the TensorFlow.js trainer (MoRA type 6, r=8 on q_proj/v_proj, the paper's setting)
// for a tiny and a ~100M-parameter generated LLaMA on each requested backend, side by side with PyTorch doing the
// same step on the same weights (bench/torch_mora_step.py). Not a test: prints a markdown table for RESULTS.md.
//
//   node --import tsx bench/trainBench.ts [--configs tiny,100m] [--backends cpu,wasm,webgpu] [--steps 3] [--no-torch]
//
// Each (config, backend) runs in its own process so backends never share an engine.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const configs = {
  tiny: { model: { hidden: 64, layers: 2, heads: 4, vocab: 320 }, batch: 4, seq: 64 },
  // ≈ 97.6M parameters: 12 × (4·768² + 3·768·2048) + 2 · 8192·768.
  '100m': { model: { hidden: 768, layers: 12, heads: 12, intermediate: 2048, vocab: 8192 }, batch: 1, seq: 128 },
} as const;
type ConfigName = keyof typeof configs;

interface Row { impl: string; backend: string; msPerStep: number; tokensPerSec: number; trainable: number; firstLoss: number }

async function one(config: ConfigName, backend: string, steps: number, modelDir: string): Promise<Row> {
  const tf = await import('@tensorflow/tfjs');
  const { selectBackend } = await import('../src/trainer/backend');
  const { CausalLM } = await import('../src/model/transformer');
  const { AdamW } = await import('../src/trainer/optimizer');
  const { accumulateGradients, applyUpdate } = await import('../src/trainer/step');
  const chosen = await selectBackend(backend as never);
  const c = configs[config];
  const model = await CausalLM.load(modelDir, { adapter: { method: 'mora', moraType: 6, r: 8, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 0 } });
  const vars = model.trainableVariables();
  const params = await Promise.all(vars.map(async (v) => new Float32Array(await v.data())));
  // A non-zero, deterministic M (0.01·sin(j + k) for element j of module k, as in the torch script): both sides start
  // from identical weights, so their first losses must agree — a parity check of the whole forward pass.
  params.forEach((p, k) => {
    p.forEach((_, j) => (p[j] = 0.01 * Math.sin(j + k)));
    vars[k].assign(tf.tensor(p, vars[k].shape));
  });
  const opt = new AdamW(vars.map((v) => v.size));
  const B = c.batch;
  const T = c.seq;
  const ids = new Int32Array(B * T).map((_, i) => (i * 7919 + 13) % c.model.vocab); // same formula in the torch script
  const labels = ids.map((_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1]));
  const batch = { ids, labels, batch: B, seqLen: T, lossTokens: B * (T - 1) };
  const times: number[] = [];
  let firstLoss = 0;
  for (let s = 0; s <= steps; s++) {
    const t0 = performance.now();
    const { loss, grads } = await accumulateGradients(model, vars, [batch]);
    applyUpdate(vars, params, grads, opt, 1e-3, 0);
    if (s === 0) firstLoss = loss;
    else times.push(performance.now() - t0); // step 0 compiles kernels / warms caches
  }
  const ms = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  model.dispose();
  return { impl: 'tfjs', backend: chosen.backend, msPerStep: +ms.toFixed(1), tokensPerSec: +((B * T) / (ms / 1000)).toFixed(1), trainable: vars.reduce((s, v) => s + v.size, 0), firstLoss: +firstLoss.toFixed(4) };
}

async function ensureModel(config: ConfigName): Promise<string> {
  const dir = path.resolve('.tmp', 'bench-models', `llama-${config}`);
  if (!existsSync(path.join(dir, 'model.safetensors'))) {
    const { makeTinyModel } = await import('../src/model/tinyModel');
    await makeTinyModel(dir, { arch: 'llama', ...configs[config].model, seed: 0 });
  }
  return dir;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      configs: { type: 'string', default: 'tiny,100m' }, backends: { type: 'string', default: 'cpu,wasm' },
      steps: { type: 'string', default: '3' }, 'no-torch': { type: 'boolean' }, one: { type: 'string' }, backend: { type: 'string' },
    },
  });
  const steps = Number(v.steps);
  if (v.one) {
    const row = await one(v.one as ConfigName, v.backend!, steps, await ensureModel(v.one as ConfigName));
    process.stdout.write(JSON.stringify(row) + '\n');
    process.exit(0); // Dawn (webgpu) would otherwise keep the process alive
  }
  const lines = [`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`, ''];
  lines.push('| model | impl | backend | batch×seq | ms/step | tokens/s | trainable | loss₀ | time / best torch |', '|---|---|---|---|---|---|---|---|---|');
  for (const config of v.configs!.split(',') as ConfigName[]) {
    const dir = await ensureModel(config);
    const c = configs[config];
    // PyTorch with 1 and 2 threads: on a loaded 2-core machine OpenMP spin-waiting can make 2 threads far slower.
    const torchRows: Row[] = [];
    if (!v['no-torch']) {
      for (const threads of [1, 2]) {
        try {
          const out = execFileSync('/usr/bin/python3', ['bench/torch_mora_step.py', '--model', dir, '--batch', String(c.batch), '--seq', String(c.seq), '--steps', String(steps), '--threads', String(threads)], {
            env: { ...process.env, OPENBLAS_NUM_THREADS: '1' }, encoding: 'utf8',
          });
          torchRows.push({ ...(JSON.parse(out) as Row), backend: `cpu (${threads} thread${threads > 1 ? 's' : ''})` });
        } catch (err) {
          process.stderr.write(`pytorch side skipped: ${(err as Error).message.split('\n')[0]}\n`);
        }
      }
    }
    const torch = torchRows.length ? torchRows.reduce((a, b) => (a.msPerStep <= b.msPerStep ? a : b)) : undefined;
    const rows: Row[] = [...torchRows];
    for (const backend of v.backends!.split(',')) {
      try {
        const out = execFileSync(process.execPath, ['--import', 'tsx', 'bench/trainBench.ts', '--one', config, '--backend', backend, '--steps', String(steps)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        rows.push(JSON.parse(out.trim().split('\n').at(-1)!) as Row);
      } catch (err) {
        process.stderr.write(`${config}/${backend} failed: ${(err as Error).message.split('\n')[0]}\n`);
      }
    }
    for (const r of rows) {
      const ratio = torch && r.impl !== 'pytorch' ? `${(r.msPerStep / torch.msPerStep).toFixed(2)}×` : '';
      lines.push(`| ${config} | ${r.impl} | ${r.backend} | ${c.batch}×${c.seq} | ${r.msPerStep} | ${r.tokensPerSec} | ${r.trainable} | ${r.firstLoss} | ${ratio} |`);
    }
    process.stderr.write(lines.at(-1) + '\n');
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
