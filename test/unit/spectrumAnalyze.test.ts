import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { defaultAdapterConfig, deltaWeight, moraRank, writeAdapter, type AdapterModule } from '../../src/adapters';
import { float32ToBytes, writeSafetensors } from '../../src/safetensors';
import { analyzeAdapter, SpectrumError } from '../../src/spectrum/analyze';
import { analyzeFullFinetune } from '../../src/spectrum/fullFinetune';
import { ModelWeights } from '../../src/safetensors';
import { singularValues } from '../../src/spectrum/linalg';
import { mulberry, randn } from '../../src/spectrum/random';
import { runSpectrum, spectrumCommand } from '../../src/cli/spectrum';

let root: string;
const rnd = mulberry(77);
const rand = (n: number, s = 0.1): Float32Array => Float32Array.from({ length: n }, () => s * randn(rnd));
// module path -> base weight shape [out, in]
const SHAPES: Record<string, number[]> = {
  'model.layers.0.self_attn.q_proj': [24, 24],
  'model.layers.0.mlp.up_proj': [40, 24],
  'model.layers.1.self_attn.q_proj': [24, 24],
  'model.layers.1.mlp.up_proj': [40, 24],
};

async function makeBase(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = Object.entries(SHAPES).map(([p, shape]) => ({
    name: `${p}.weight`, dtype: 'F32' as const, shape, data: float32ToBytes(rand(shape[0] * shape[1], 1), 'F32'),
  }));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
}

function moraModules(r: number, zero = false): AdapterModule[] {
  return Object.entries(SHAPES).map(([p, [out, inF]]) => {
    const rh = moraRank(inF, out, r, 6);
    const M = zero ? new Float32Array(rh * rh) : rand(rh * rh);
    return { path: p, A: M, aShape: [rh, rh], B: M, bShape: [rh, rh] };
  });
}

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'mora-spectrum-'));
  await makeBase(path.join(root, 'base'));
  const mora = defaultAdapterConfig({ r: 2, lora_alpha: 2, target_modules: ['q_proj', 'up_proj'], use_mora: true, mora_type: 6 });
  await writeAdapter(path.join(root, 'mora'), mora, moraModules(2));
  await writeAdapter(path.join(root, 'mora-zero'), mora, moraModules(2, true));
  await writeAdapter(path.join(root, 'mora-named'), { ...mora, base_model_name_or_path: path.join(root, 'base') }, moraModules(2));
  const lora = defaultAdapterConfig({ r: 3, lora_alpha: 6, target_modules: ['q_proj', 'up_proj'] });
  const loraMods = Object.entries(SHAPES).map(([p, [out, inF]]) => ({ path: p, A: rand(3 * inF), aShape: [3, inF], B: rand(out * 3), bShape: [out, 3] }));
  await writeAdapter(path.join(root, 'lora'), lora, loraMods);
});

after(() => rmSync(root, { recursive: true, force: true }));

async function checkAgainstDense(dir: string, base?: string): Promise<void> {
  const report = await analyzeAdapter(dir, { base });
  assert.deepEqual(report.modules.map((m) => [m.layer, m.moduleType]), [[0, 'up_proj'], [0, 'q_proj'], [1, 'up_proj'], [1, 'q_proj']]);
  const { readAdapter } = await import('../../src/adapters');
  const adapter = await readAdapter(dir);
  for (const m of report.modules) {
    const [out, inF] = SHAPES[m.path];
    assert.deepEqual([m.rows, m.cols], [out, inF]);
    const dense = singularValues(deltaWeight(adapter.config, adapter.modules.get(m.path)!, [out, inF]), out, inF);
    for (let i = 0; i < dense.length; i++) {
      const got = m.sigma[i] ?? 0;
      assert.ok(Math.abs(got - dense[i]) <= 2e-6 * dense[0], `${m.path} σ${i}: ${got} vs ${dense[i]}`);
    }
    assert.equal(m.metrics.countAbove, m.sigma.filter((s) => s > 0.1).length);
    assert.equal(m.metrics.sigmaMax, m.sigma[0]);
  }
}

test('MoRA adapter + base folder: per-module σ equal the dense SVD of deltaWeight, in layer order', async () => {
  await checkAgainstDense(path.join(root, 'mora'), path.join(root, 'base'));
});

test('MoRA shapes come from base_model_name_or_path when it names a local folder', async () => {
  const r = await analyzeAdapter(path.join(root, 'mora-named'));
  assert.equal(r.base, path.join(root, 'base'));
  assert.equal(r.modules.length, 4);
});

test('MoRA without any base is a named BaseShapesUnknown error', async () => {
  await assert.rejects(analyzeAdapter(path.join(root, 'mora')), (e: unknown) => e instanceof SpectrumError && e.kind === 'BaseShapesUnknown');
});

test('LoRA adapter: low-rank σ equal the dense SVD of deltaWeight (scaling alpha/r included)', async () => {
  await checkAgainstDense(path.join(root, 'lora'));
  const r = await analyzeAdapter(path.join(root, 'lora'));
  assert.ok(r.modules.every((m) => m.method === 'low-rank' && m.sigma.length === 3 && m.metrics.numericalRank === 3));
});

test('progress is reported per module and an aborted signal cancels with a named error', async () => {
  const seen: number[] = [];
  await analyzeAdapter(path.join(root, 'lora'), { onProgress: (p) => seen.push(p.done) });
  assert.deepEqual(seen, [1, 2, 3, 4]);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(analyzeAdapter(path.join(root, 'lora'), { signal: ac.signal }), (e: unknown) => e instanceof SpectrumError && e.kind === 'Cancelled');
});

test('intruder dimensions: a zero adapter leaves W unchanged, so no top vector is an intruder', async () => {
  const r = await analyzeAdapter(path.join(root, 'mora-zero'), { base: path.join(root, 'base'), intruders: { k: 3, kBase: 8 } });
  for (const m of r.modules) {
    assert.equal(m.intruders!.count, 0);
    assert.ok(m.intruders!.maxSimilarity.every((c) => c > 0.99), `${m.path}: ${m.intruders!.maxSimilarity}`);
    assert.equal(m.metrics.effectiveRank, 0);
  }
});

async function runCli(argv: string[]): Promise<string> {
  let out = '';
  await runSpectrum(argv, (s) => (out += s));
  return out;
}

test('mora spectrum: --json carries the full σ arrays; the table has one row per module; bad flags are usage errors', async () => {
  const json = JSON.parse(await runCli(['--adapter', path.join(root, 'mora'), '--base', path.join(root, 'base'), '--json', '--top', '4']));
  assert.equal(json.modules.length, 4);
  assert.equal(json.modules[1].sigma.length, 24); // q_proj 24×24, r̂ = 10: chunks 0–1 closed form + coupled chunk 2
  assert.equal(json.modules[0].metrics.topK, 4);
  const table = await runCli(['--adapter', path.join(root, 'lora')]);
  const lines = table.trim().split('\n');
  assert.equal(lines.length, 6);
  assert.match(lines[1], /^module\s+shape\s+rank\s+method\s+σ_max/);
  assert.match(lines[2], /^model\.layers\.0\.mlp\.up_proj\s+40×24\s+3\s+low-rank/);
  await assert.rejects(spectrumCommand.run(['--base', 'x']), /missing required flag --adapter/);
  await assert.rejects(spectrumCommand.run(['--adapter', 'x', '--top', '0']), /--top must be >= 1/);
});

test('full fine-tune: ΔW = W_ft − W_base of a rank-2 change gives two σ matching the dense SVD, and exact ‖ΔW‖_F', async () => {
  const base = await ModelWeights.open(path.join(root, 'base'));
  const tensors = [];
  const dense = new Map<string, Float64Array>();
  for (const [p, [out, inF]] of Object.entries(SHAPES)) {
    const W = await base.readFloat32(`${p}.weight`);
    const u = rand(out * 2, 1);
    const v = rand(2 * inF, 1);
    const ft = Float32Array.from(W, (w, i) => w + u[Math.floor(i / inF) * 2] * v[i % inF] + 0.5 * u[Math.floor(i / inF) * 2 + 1] * v[inF + (i % inF)]);
    dense.set(p, singularValues(Float64Array.from(ft, (x, i) => x - W[i]), out, inF));
    tensors.push({ name: `${p}.weight`, dtype: 'F32' as const, shape: [out, inF], data: float32ToBytes(ft, 'F32') });
  }
  await base.close();
  mkdirSync(path.join(root, 'ft'), { recursive: true });
  await writeSafetensors(path.join(root, 'ft', 'model.safetensors'), tensors);
  const r = await analyzeFullFinetune(path.join(root, 'base'), path.join(root, 'ft'), { k: 4 });
  assert.equal(r.modules.length, 4);
  for (const m of r.modules) {
    const d = dense.get(m.path)!;
    assert.equal(m.method, 'randomized');
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(m.sigma[i] - d[i]) < 1e-9 * d[0], `${m.path} σ${i}`);
    assert.ok(m.sigma[2] < 1e-5 * d[0], 'rank two: σ3 is float32 noise');
    const f = Math.sqrt(d.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(m.metrics.frobenius - f) < 1e-9 * f);
    assert.equal(m.metrics.countAbove, d.filter((x) => x > 0.1).length);
  }
});

test('full fine-tune of a full-rank ΔW: energy of the top-k is a share of the exact ‖ΔW‖_F², not of the top-k sketch', async () => {
  const base = await ModelWeights.open(path.join(root, 'base'));
  const p = 'model.layers.0.mlp.up_proj';
  const [out, inF] = SHAPES[p];
  const W = await base.readFloat32(`${p}.weight`);
  await base.close();
  const ft = Float32Array.from(W, (w) => w + randn(rnd)); // Gaussian noise: every σ carries energy
  mkdirSync(path.join(root, 'ft-noise'), { recursive: true });
  await writeSafetensors(path.join(root, 'ft-noise', 'model.safetensors'), [
    { name: `${p}.weight`, dtype: 'F32', shape: [out, inF], data: float32ToBytes(ft, 'F32') },
  ]);
  const r = await analyzeFullFinetune(path.join(root, 'base'), path.join(root, 'ft-noise'), { k: 4, topK: 2 });
  const d = singularValues(Float64Array.from(ft, (x, i) => x - W[i]), out, inF);
  const all = d.reduce((s, x) => s + x * x, 0);
  const m = r.modules[0].metrics;
  // Top-2 σ of the randomized path are within 1e-2 relative of the dense ones for this flat spectrum at k = 4.
  assert.ok(Math.abs(m.energyTopK - (d[0] * d[0] + d[1] * d[1]) / all) < 0.02, `energy ${m.energyTopK}`);
  assert.ok(m.energyTopK < 0.5, `a flat 24-value spectrum puts far less than half its energy in 2 σ, got ${m.energyTopK}`);
});
