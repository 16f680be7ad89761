// Forward+backward time of one training step with and without the plain-matMul custom gradients (src/model/fastLinear.ts),
// on generated LLaMA models. Not a test: prints a markdown table for RESULTS.md.
//
//   node --import tsx bench/gradBench.ts [--backend wasm] [--steps 5] [--configs tiny,small]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { setCustomGradients } from '../src/model/fastLinear';
import { makeTinyModel } from '../src/model/tinyModel';
import { CausalLM, type AdapterSpec } from '../src/model/transformer';
import { selectBackend } from '../src/trainer/backend';

const configs = {
  tiny: { model: { hidden: 64, layers: 2, heads: 4, vocab: 320 }, batch: 4, seq: 64 },
  small: { model: { hidden: 256, layers: 4, heads: 8, kvHeads: 4, vocab: 2048 }, batch: 4, seq: 128 },
} as const;

const adapters: Record<string, AdapterSpec> = {
  'MoRA-6 r=8 q,v': { method: 'mora', moraType: 6, r: 8, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 0 },
  'MoRA-6 r=8 all-linear': { method: 'mora', moraType: 6, r: 8, alpha: 8, targets: 'all-linear', seed: 0 },
  'LoRA r=8 all-linear': { method: 'lora', moraType: 1, r: 8, alpha: 16, targets: 'all-linear', seed: 0 },
};

/** Median step time [autodiff, custom] with the two variants interleaved step by step, so load changes hit both alike. */
async function stepMs(model: CausalLM, B: number, T: number, vocab: number, steps: number): Promise<[number, number]> {
  const ids = tf.tensor2d(new Int32Array(B * T).map((_, i) => (i * 7919 + 13) % vocab), [B, T], 'int32');
  const labels = tf.tensor2d(new Int32Array(B * T).map((_, i) => (i * 104729 + 7) % vocab), [B, T], 'int32');
  const vars = model.trainableVariables();
  const times: [number[], number[]] = [[], []];
  for (let s = 0; s <= steps; s++) {
    for (const custom of [false, true]) {
      setCustomGradients(custom);
      const t0 = performance.now();
      const { value, grads } = tf.variableGrads(() => model.loss(ids, labels), vars);
      await value.data();
      for (const g of Object.values(grads)) await g.data();
      tf.dispose([value, ...Object.values(grads)]);
      if (s > 0) times[custom ? 1 : 0].push(performance.now() - t0); // step 0 warms kernels and caches
    }
  }
  setCustomGradients(true);
  tf.dispose([ids, labels]);
  const median = (t: number[]) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)];
  return [median(times[0]), median(times[1])];
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: { backend: { type: 'string', default: 'wasm' }, steps: { type: 'string', default: '5' }, configs: { type: 'string', default: 'tiny,small' } },
  });
  const chosen = await selectBackend(v.backend as never);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gradbench-'));
  console.log(`backend: ${chosen.detail}; ${os.cpus()[0].model}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
  console.log('| model | B×T | adapter | autodiff (transposed kernels) ms | custom grad ms | speed-up |');
  console.log('|---|---|---|---|---|---|');
  try {
    for (const name of v.configs.split(',') as (keyof typeof configs)[]) {
      const c = configs[name];
      const dir = path.join(tmp, name);
      await makeTinyModel(dir, { arch: 'llama', ...c.model, seed: 0 });
      for (const [label, spec] of Object.entries(adapters)) {
        const model = await CausalLM.load(dir, { adapter: spec });
        const [before, after] = await stepMs(model, c.batch, c.seq, c.model.vocab, Number(v.steps));
        model.dispose();
        const shape = `h${c.model.hidden} L${c.model.layers} V${c.model.vocab}`;
        console.log(`| ${name} (${shape}) | ${c.batch}×${c.seq} | ${label} | ${before.toFixed(0)} | ${after.toFixed(0)} | ${(before / after).toFixed(2)}× |`);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
