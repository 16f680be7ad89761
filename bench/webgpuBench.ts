// tfjs matMul throughput on the WebGPU backend (Dawn through the `webgpu` package) against wasm, for n×n float32
// matrices. Not a test: prints a markdown table for RESULTS.md. Each timed call includes reading the result back
// (await data()), as a training step does; the first call of each shape warms kernels and pipelines and is not timed.
//
//   node --import tsx bench/webgpuBench.ts [--backends wasm,webgpu] [--sizes 512,1024] [--seconds 2]
//   backends: wasm, cpu, webgpu (Dawn's choice), webgpu-native or webgpu-opengles (one Dawn path only).
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/trainer/backend';
import { initWebGpu, releaseWebGpu } from '../src/trainer/webgpuSetup';

type Variant = { label: string; transposeA: boolean; transposeB: boolean };
const variants: Variant[] = [
  { label: 'A·B', transposeA: false, transposeB: false },
  { label: 'A·Bᵀ', transposeA: false, transposeB: true },
  { label: 'Aᵀ·B', transposeA: true, transposeB: false },
];

/** Calls per second of matMul(a, b) with the result read back, repeated for at least `seconds`. */
async function rate(a: tf.Tensor2D, b: tf.Tensor2D, v: Variant, seconds: number): Promise<{ calls: number; ms: number }> {
  const once = async () => {
    const c = tf.matMul(a, b, v.transposeA, v.transposeB);
    await c.data();
    c.dispose();
  };
  await once();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000 || calls < 2) {
    await once();
    calls++;
  }
  return { calls, ms: (performance.now() - t0) / calls };
}

async function useBackend(name: string): Promise<string> {
  if (name.startsWith('webgpu')) {
    releaseWebGpu(); // a previous row's path
    const path = name === 'webgpu-native' ? 'native' : name === 'webgpu-opengles' ? 'opengles' : undefined;
    const r = await initWebGpu({ path });
    if (!r.ok) throw new Error(r.note);
    if (!(await tf.setBackend('webgpu'))) throw new Error('webgpu: tf.setBackend failed');
    return `webgpu, ${r.adapterInfo}`;
  }
  return (await selectBackend(name as never)).detail;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      backends: { type: 'string', default: 'wasm,webgpu' },
      sizes: { type: 'string', default: '512,1024' },
      seconds: { type: 'string', default: '2' },
    },
  });
  const sizes = v.sizes.split(',').map(Number);
  const seconds = Number(v.seconds);
  console.log(`${os.cpus()[0].model}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
  console.log('| backend | n | op | ms / call | GFLOP/s |');
  console.log('|---|---|---|---|---|');
  try {
    for (const name of v.backends.split(',')) {
      let detail: string;
      try {
        detail = await useBackend(name);
      } catch (err) {
        console.log(`| ${name} | – | – | unavailable: ${(err as Error).message.split('\n')[0]} | – |`);
        continue;
      }
      for (const n of sizes) {
        // Values in [-1, 1) from a fixed pattern: the same inputs on every backend.
        const a = tf.tensor2d(Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 2000) / 1000 - 1), [n, n]);
        const b = tf.tensor2d(Float32Array.from({ length: n * n }, (_, i) => ((i * 104729) % 2000) / 1000 - 1), [n, n]);
        for (const variant of variants) {
          const { ms } = await rate(a, b, variant, seconds);
          const gflops = (2 * n ** 3) / (ms * 1e6); // 2n³ flops per n×n·n×n product
          console.log(`| ${detail} | ${n} | ${variant.label} | ${ms.toFixed(1)} | ${gflops.toFixed(1)} |`);
        }
        tf.dispose([a, b]);
      }
    }
  } finally {
    releaseWebGpu();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
