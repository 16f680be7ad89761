// Merged weights, run without adapters, give the same logits as the base model run with the adapter layers (the
// tfjs forward: MoraLayer's compress/rotate/mix/expand ops and LoraLayer's two matmuls, an implementation independent
// of moraDeltaW/loraDeltaW). F32 tiny models, so the only differences are float32 summation order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { moraRank, type AdapterModule } from '../../src/adapters';
import { mergeAdapters } from '../../src/adapters/merge';
import { LoraLayer, MoraLayer } from '../../src/model/adapterLayers';
import { readModelConfig, type ModelConfig } from '../../src/model/config';
import { hiddenStates, lmHead, TableCache } from '../../src/model/forward';
import { ropeInvFreq } from '../../src/model/rope';
import { makeTinyModel } from '../../src/model/tinyModel';
import { adapterCandidates, disposeModelTensors, loadModelTensors } from '../../src/model/weights';
import { Rng } from '../../src/util/rng';
import { tempDir, writeTestAdapter } from './mergeTestUtil';

type Kind = 'mora1' | 'mora6' | 'lora';
const r = 4;
const alpha = 8;

async function logits(dir: string, cfg: ModelConfig, ids: number[], adapters?: Map<string, AdapterModule>, kind?: Kind): Promise<Float32Array> {
  const t = await loadModelTensors(dir, cfg, false);
  const layers: { dispose(): void }[] = [];
  for (const l of adapterCandidates(t)) {
    const m = adapters?.get(l.path);
    if (!m) continue;
    if (kind === 'lora') {
      const layer = new LoraLayer(l.path, l.inF, l.outF, r, alpha / r, 0);
      layer.A.assign(tf.tensor2d(m.A, m.aShape as [number, number]));
      layer.B.assign(tf.tensor2d(m.B, m.bShape as [number, number]));
      l.adapter = layer;
      layers.push(layer);
    } else {
      const layer = new MoraLayer(l.path, l.inF, l.outF, r, kind === 'mora1' ? 1 : 6);
      layer.A.assign(tf.tensor2d(m.A, m.aShape as [number, number]));
      l.adapter = layer;
      layers.push(layer);
    }
  }
  const tables = new TableCache(cfg.arch === 'gpt2' ? null : ropeInvFreq(cfg.headDim, cfg.ropeTheta, cfg.ropeScaling));
  const out = tf.tidy(() => lmHead(t, hiddenStates(t, cfg, tf.tensor2d([ids], [1, ids.length], 'int32'), tables)));
  const values = (await out.data()) as Float32Array;
  out.dispose();
  tables.dispose();
  for (const l of layers) l.dispose();
  disposeModelTensors(t);
  return values;
}

function randomAdapter(kind: Kind, cfg: ModelConfig, paths: { path: string; inF: number; outF: number }[]): AdapterModule[] {
  const rng = new Rng(kind.length * 7 + 1);
  return paths.map(({ path: p, inF, outF }) => {
    if (kind === 'lora') {
      return { path: p, A: rng.normalArray(r * inF, 0.2), aShape: [r, inF], B: rng.normalArray(outF * r, 0.2), bShape: [outF, r] };
    }
    const rHat = moraRank(inF, outF, r, kind === 'mora1' ? 1 : 6);
    const M = rng.normalArray(rHat * rHat, 0.1);
    return { path: p, A: M, aShape: [rHat, rHat], B: M, bShape: [rHat, rHat] };
  });
}

const cases: ['llama' | 'gpt2', Kind][] = [['llama', 'mora1'], ['llama', 'mora6'], ['llama', 'lora'], ['gpt2', 'lora'], ['gpt2', 'mora6']];
for (const [arch, kind] of cases) {
  test(`merged forward == adapter forward on a tiny ${arch} (${kind}, all linear layers)`, async () => {
    const root = await tempDir();
    const base = path.join(root, 'tiny');
    // in != out for k/v (GQA) and the MLP, and 88 is not a multiple of most r̂: the padding/tiling rules all run.
    // GPT-2 stores Conv1D weights [in, out] (fan_in_fan_out), so ΔW is merged transposed.
    await makeTinyModel(base, { arch, hidden: 32, layers: 2, heads: 4, kvHeads: arch === 'llama' ? 2 : undefined, vocab: 300, seed: 4 });
    const cfg = await readModelConfig(base);
    const t = await loadModelTensors(base, cfg, false);
    const paths = adapterCandidates(t).map((l) => ({ path: l.path, inF: l.inF, outF: l.outF }));
    disposeModelTensors(t);
    const mods = randomAdapter(kind, cfg, paths);
    const adapter = await writeTestAdapter(path.join(root, kind), {
      r, lora_alpha: alpha, target_modules: 'all-linear', use_mora: kind !== 'lora', mora_type: kind === 'mora6' ? 6 : 1, fan_in_fan_out: arch === 'gpt2',
    }, mods);
    const merged = path.join(root, 'merged');
    await mergeAdapters({ base, adapters: [{ dir: adapter }], out: merged });

    const ids = [1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100];
    const withAdapter = await logits(base, cfg, ids, new Map(mods.map((m) => [m.path, m])), kind);
    const mergedOnly = await logits(merged, await readModelConfig(merged), ids);
    const baseOnly = await logits(base, cfg, ids);
    let maxDiff = 0;
    let effect = 0;
    let scale = 0;
    for (let i = 0; i < withAdapter.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(withAdapter[i] - mergedOnly[i]));
      effect = Math.max(effect, Math.abs(withAdapter[i] - baseOnly[i]));
      scale = Math.max(scale, Math.abs(withAdapter[i]));
    }
    console.log(`# ${arch} ${kind}: max |adapter − merged| = ${maxDiff.toExponential(2)} over ${withAdapter.length} logits (|logit| ≤ ${scale.toFixed(3)}, adapter effect ${effect.toExponential(2)})`);
    assert.ok(effect > 1e-3, `the adapter must change the logits (effect ${effect})`);
    assert.ok(maxDiff <= 1e-5, `max abs diff ${maxDiff}`);
    await fs.rm(root, { recursive: true, force: true });
  });
}
