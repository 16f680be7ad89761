// CausalLM.logits against an independent float64 reference written with plain loops (below), on llama (GQA, untied
// head, linear RoPE scaling), qwen2 (q/k/v bias, tied embeddings, BF16 shards) and gpt2 (Conv1D, learned positions).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readModelConfig, type ModelConfig } from '../../src/model/config';
import { ModelWeights } from '../../src/safetensors';
import { CausalLM, TransformerError } from '../../src/model/transformer';
import { ModelWeightsError } from '../../src/model/weights';
import { RopeError, ropeInvFreq } from '../../src/model/rope';
import { selectBackend } from '../../src/trainer/backend';
import { maxAbs, maxAbsDiff, tmpDir, writeTestModel, type TestModelOptions } from './transformerTestUtil';

// ---------- float64 reference: one token vector at a time, nothing clever ----------
type W = Map<string, Float64Array>;

async function readAll(dir: string): Promise<W> {
  const mw = await ModelWeights.open(dir);
  const w: W = new Map();
  for (const n of mw.names()) w.set(n, Float64Array.from(await mw.readFloat32(n)));
  await mw.close();
  return w;
}

/** nn.Linear: W [out, in]; Conv1D (fanInFanOut): W [in, out]. */
function lin(W: Float64Array, b: Float64Array | undefined, x: Float64Array, inF: number, outF: number, conv = false): Float64Array {
  const y = new Float64Array(outF);
  for (let o = 0; o < outF; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inF; i++) s += (conv ? W[i * outF + o] : W[o * inF + i]) * x[i];
    y[o] = s;
  }
  return y;
}
function rms(x: Float64Array, g: Float64Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const k = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * k * g[i]);
}
function ln(x: Float64Array, g: Float64Array, b: Float64Array, eps: number): Float64Array {
  const mu = x.reduce((a, v) => a + v, 0) / x.length;
  const va = x.reduce((a, v) => a + (v - mu) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mu) / Math.sqrt(va + eps)) * g[i] + b[i]);
}
const silu = (v: number) => v / (1 + Math.exp(-v));
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

/** Rotates one head vector (rotate_half pairs j, j + d/2) at position t; `factor` is linear RoPE scaling. */
function rope(v: Float64Array, t: number, theta: number, factor: number): Float64Array {
  const d = v.length;
  const h = d / 2;
  const out = new Float64Array(d);
  for (let j = 0; j < h; j++) {
    const a = (t / factor) * Math.pow(theta, (-2 * j) / d);
    out[j] = v[j] * Math.cos(a) - v[j + h] * Math.sin(a);
    out[j + h] = v[j + h] * Math.cos(a) + v[j] * Math.sin(a);
  }
  return out;
}

/**
 * Logits [T, V] of one sequence. `noRope` and `noWindow` exist only to show the comparison is sensitive to positions
 * and to the sliding window.
 */
function reference(w: W, c: ModelConfig, ids: number[], noRope = false, noWindow = false): Float64Array {
  const g = (n: string) => {
    const t = w.get(n) ?? w.get(n.replace(/^transformer\./, ''));
    if (!t) throw new Error(`reference: missing ${n}`);
    return t;
  };
  const gpt = c.arch === 'gpt2';
  const H = c.hidden;
  const d = c.headDim;
  const T = ids.length;
  const factor = c.ropeScaling?.type === 'linear' ? c.ropeScaling.factor : 1;
  let xs = ids.map((id, t) => {
    const e = (gpt ? g('transformer.wte.weight') : g('model.embed_tokens.weight')).slice(id * H, id * H + H);
    if (gpt) for (let i = 0; i < H; i++) e[i] += g('transformer.wpe.weight')[t * H + i];
    return e;
  });
  for (let l = 0; l < c.layers; l++) {
    const p = gpt ? `transformer.h.${l}` : `model.layers.${l}`;
    const bias = (n: string) => (w.has(n) || w.has(n.replace(/^transformer\./, '')) ? g(n) : undefined);
    const qs: Float64Array[][] = [];
    const ks: Float64Array[][] = [];
    const vs: Float64Array[][] = [];
    for (let t = 0; t < T; t++) {
      const a = gpt ? ln(xs[t], g(`${p}.ln_1.weight`), g(`${p}.ln_1.bias`), c.normEps) : rms(xs[t], g(`${p}.input_layernorm.weight`), c.normEps);
      let q: Float64Array, k: Float64Array, v: Float64Array;
      if (gpt) {
        const qkv = lin(g(`${p}.attn.c_attn.weight`), g(`${p}.attn.c_attn.bias`), a, H, 3 * H, true);
        [q, k, v] = [qkv.slice(0, H), qkv.slice(H, 2 * H), qkv.slice(2 * H)];
      } else {
        const m = (n: string, out: number) => lin(g(`${p}.self_attn.${n}.weight`), bias(`${p}.self_attn.${n}.bias`), a, H, out);
        [q, k, v] = [m('q_proj', c.heads * d), m('k_proj', c.kvHeads * d), m('v_proj', c.kvHeads * d)];
      }
      const head = (x: Float64Array, n: number) => Array.from({ length: n }, (_, h) => x.slice(h * d, h * d + d));
      const pos = (x: Float64Array) => (gpt || noRope ? x : rope(x, t, c.ropeTheta, factor));
      qs.push(head(q, c.heads).map(pos));
      ks.push(head(k, c.kvHeads).map(pos));
      vs.push(head(v, c.kvHeads));
    }
    const sw = c.slidingWindow && !noWindow && l >= c.slidingWindow.fromLayer ? c.slidingWindow.window : Infinity;
    xs = xs.map((x, t) => {
      const att = new Float64Array(c.heads * d);
      const lo = Math.max(0, t - sw + 1); // keys lo..t: the query itself and window − 1 before it
      for (let h = 0; h < c.heads; h++) {
        const kv = Math.floor(h / (c.heads / c.kvHeads));
        const s = Array.from({ length: t + 1 - lo }, (_, u) => qs[t][h].reduce((acc, qi, i) => acc + qi * ks[lo + u][kv][i], 0) / Math.sqrt(d));
        const mx = Math.max(...s);
        const e = s.map((v) => Math.exp(v - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let u = 0; u < s.length; u++) for (let i = 0; i < d; i++) att[h * d + i] += (e[u] / z) * vs[lo + u][kv][i];
      }
      const o = gpt
        ? lin(g(`${p}.attn.c_proj.weight`), g(`${p}.attn.c_proj.bias`), att, H, H, true)
        : lin(g(`${p}.self_attn.o_proj.weight`), undefined, att, c.heads * d, H);
      const h1 = x.map((v, i) => v + o[i]);
      const I = c.intermediate;
      if (gpt) {
        const m = ln(h1, g(`${p}.ln_2.weight`), g(`${p}.ln_2.bias`), c.normEps);
        const f = lin(g(`${p}.mlp.c_fc.weight`), g(`${p}.mlp.c_fc.bias`), m, H, I, true).map(gelu);
        const y = lin(g(`${p}.mlp.c_proj.weight`), g(`${p}.mlp.c_proj.bias`), f, I, H, true);
        return h1.map((v, i) => v + y[i]);
      }
      const m = rms(h1, g(`${p}.post_attention_layernorm.weight`), c.normEps);
      const gate = lin(g(`${p}.mlp.gate_proj.weight`), undefined, m, H, I);
      const up = lin(g(`${p}.mlp.up_proj.weight`), undefined, m, H, I);
      const y = lin(g(`${p}.mlp.down_proj.weight`), undefined, gate.map((v, i) => silu(v) * up[i]), I, H);
      return h1.map((v, i) => v + y[i]);
    });
  }
  const headW = gpt || c.tieEmbeddings ? (gpt ? g('transformer.wte.weight') : g('model.embed_tokens.weight')) : g('lm_head.weight');
  const out = new Float64Array(T * c.vocab);
  xs.forEach((x, t) => {
    const n = gpt ? ln(x, g('transformer.ln_f.weight'), g('transformer.ln_f.bias'), c.normEps) : rms(x, g('model.norm.weight'), c.normEps);
    out.set(lin(headW, undefined, n, H, c.vocab), t * c.vocab);
  });
  return out;
}

// ---------- tests ----------
let root: Awaited<ReturnType<typeof tmpDir>>;
before(async () => {
  await selectBackend('wasm');
  root = await tmpDir('mora-transformer-');
});
after(() => root.cleanup());

const batch = [
  [5, 17, 300, 42, 42, 9, 120],
  [258, 1, 2, 3, 250, 77, 64],
];

async function compare(name: string, o: TestModelOptions): Promise<{ dir: string; model: CausalLM; ref: Float64Array[] }> {
  const dir = path.join(root.dir, name);
  await import('node:fs/promises').then((fs) => fs.mkdir(dir));
  await writeTestModel(dir, o);
  const c = await readModelConfig(dir);
  const w = await readAll(dir);
  const model = await CausalLM.load(dir, {});
  const ids = tf.tensor2d(batch, [2, 7], 'int32');
  const got = await model.logits(ids).data();
  ids.dispose();
  const ref = batch.map((seq) => reference(w, c, seq));
  const want = new Float64Array(2 * 7 * c.vocab);
  ref.forEach((r, b) => want.set(r, b * r.length));
  const diff = maxAbsDiff(got, want);
  assert.ok(maxAbs(want) > 1, `${name}: reference logits too small to be a meaningful check (max |logit| ${maxAbs(want)})`);
  assert.ok(diff < 1e-4, `${name}: max abs diff vs float64 reference = ${diff.toExponential(2)} (max |logit| ${maxAbs(want).toFixed(2)})`);
  return { dir, model, ref };
}

test('llama (GQA 4/2, untied head, linear RoPE ×2) logits equal the float64 reference', async () => {
  const { model, ref, dir } = await compare('llama', {
    arch: 'llama', hidden: 32, layers: 2, heads: 4, kvHeads: 2, vocab: 320, seed: 1,
    configPatch: { rope_scaling: { type: 'linear', factor: 2 }, rope_theta: 500 },
  });
  // The comparison is sensitive to positions: the reference without RoPE is far off.
  const noRope = reference(await readAll(dir), model.config, batch[0], true);
  assert.ok(maxAbsDiff(noRope, ref[0]) > 1e-2, 'dropping RoPE should change the logits');
  model.dispose();
});

test('qwen2 (q/k/v bias, tied embeddings, BF16 in 3 shards) logits equal the float64 reference', async () => {
  const { model } = await compare('qwen2', { arch: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 1, vocab: 301, seed: 2, dtype: 'BF16', shards: 3 });
  assert.equal(model.config.tieEmbeddings, true);
  model.dispose();
});

test('sliding-window attention (Mistral, and Qwen2 from max_window_layers) equals the float64 reference', async () => {
  const mistral = await compare('mistral', { arch: 'llama', hidden: 32, layers: 2, heads: 4, kvHeads: 2, vocab: 320, seed: 4, configPatch: { model_type: 'mistral', sliding_window: 3 } });
  assert.deepEqual(mistral.model.config.slidingWindow, { window: 3, fromLayer: 0 });
  const full = reference(await readAll(mistral.dir), mistral.model.config, batch[0], false, true);
  assert.ok(maxAbsDiff(full, mistral.ref[0]) > 1e-2, 'ignoring the window should change the logits');
  mistral.model.dispose();
  const qwen = await compare('qwen2-swa', {
    arch: 'qwen2', hidden: 32, layers: 2, heads: 4, kvHeads: 2, vocab: 320, seed: 5,
    configPatch: { use_sliding_window: true, sliding_window: 2, max_window_layers: 1 },
  });
  assert.deepEqual(qwen.model.config.slidingWindow, { window: 2, fromLayer: 1 });
  qwen.model.dispose();
  // Mistral v0.2+ ships sliding_window: null, and Qwen2 ignores the field unless use_sliding_window is set.
  const { parseModelConfig } = await import('../../src/model/config');
  const base = { hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 16, vocab_size: 10 };
  assert.equal(parseModelConfig({ ...base, model_type: 'mistral', sliding_window: null }).slidingWindow, null);
  assert.equal(parseModelConfig({ ...base, model_type: 'qwen2', sliding_window: 4096 }).slidingWindow, null);
  assert.throws(() => parseModelConfig({ ...base, model_type: 'mistral', sliding_window: 0 }), /sliding_window/);
});

test('the table cache keeps the last few lengths and frees the rest', async () => {
  const { TableCache } = await import('../../src/model/forward');
  const before = tf.memory().numTensors;
  const cache = new TableCache(ropeInvFreq(8, 10000, null), 3);
  for (let T = 1; T <= 10; T++) cache.get(T);
  cache.get(8); // touched: no longer the oldest
  cache.get(11);
  assert.deepEqual(cache.lengths, [9, 10, 8, 11]);
  const t11 = cache.get(11);
  assert.deepEqual(Array.from(await t11.windowMask.data()).slice(10 * 11, 11 * 11).map((v) => (v === 0 ? 1 : 0)), [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  cache.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('gpt2 (Conv1D, fused c_attn, learned positions, LayerNorm, gelu_new) logits equal the float64 reference', async () => {
  const { model } = await compare('gpt2', { arch: 'gpt2', hidden: 32, layers: 2, heads: 4, vocab: 310, seed: 3, maxPositions: 16 });
  model.dispose();
});

test('loss is the mean cross-entropy over labels ≠ −100; greedy generate follows the reference argmax', async () => {
  const dir = path.join(root.dir, 'llama');
  const model = await CausalLM.load(dir, {});
  const w = await readAll(dir);
  const labelRows = [
    [17, 300, 42, -100, 9, 120, -100],
    [-100, -100, 3, 250, 77, 64, 1],
  ];
  let want = 0;
  let n = 0;
  batch.forEach((seq, b) => {
    const lg = reference(w, model.config, seq);
    labelRows[b].forEach((lab, t) => {
      if (lab === -100) return;
      const row = lg.subarray(t * model.config.vocab, (t + 1) * model.config.vocab);
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
      want += lse - row[lab];
      n++;
    });
  });
  want /= n;
  const ids = tf.tensor2d(batch, [2, 7], 'int32');
  const labels = tf.tensor2d(labelRows, [2, 7], 'int32');
  const got = (await model.loss(ids, labels).data())[0];
  assert.ok(Math.abs(got - want) < 1e-4, `loss ${got} vs reference ${want}`);
  tf.dispose([ids, labels]);

  const prompt = [5, 17, 300];
  const gen = await model.generate(prompt, 4);
  const seq = [...prompt];
  for (let i = 0; i < 4; i++) {
    const lg = reference(w, model.config, seq);
    const last = lg.subarray((seq.length - 1) * model.config.vocab);
    seq.push(last.indexOf(Math.max(...last)));
  }
  assert.deepEqual(gen, seq.slice(prompt.length));
  assert.deepEqual(await model.generate(prompt, 4, gen[1]), gen.slice(0, 2), 'stops after eos');
  model.dispose();
});

test('RoPE scaling: llama3 keeps high frequencies, divides low ones by factor; unsupported types are named errors', () => {
  const s = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
  const base = ropeInvFreq(128, 500000, null);
  const l3 = ropeInvFreq(128, 500000, s);
  assert.equal(l3[0], base[0]); // wavelength 2π < 8192/4: unchanged
  assert.equal(l3[63], base[63] / 8); // wavelength > 8192: divided by factor
  // A band frequency: smooth = (8192/λ − 1)/(4 − 1), inv' = (1 − smooth)·inv/8 + smooth·inv.
  const j = base.findIndex((f) => 2 * Math.PI / f >= 2048 && 2 * Math.PI / f <= 8192);
  const sm = (8192 / ((2 * Math.PI) / base[j]) - 1) / 3;
  assert.ok(Math.abs(l3[j] - ((1 - sm) * base[j] / 8 + sm * base[j])) < 1e-15);
  assert.deepEqual(Array.from(ropeInvFreq(8, 10000, { type: 'linear', factor: 4 })), Array.from(ropeInvFreq(8, 10000, null)).map((f) => f / 4));
  assert.throws(() => ropeInvFreq(8, 10000, { type: 'yarn', factor: 4 }), (e: unknown) => e instanceof RopeError && e.kind === 'UnsupportedRopeScaling' && /yarn/.test(e.message));
});

test('bad inputs and options are named errors', async () => {
  const dir = path.join(root.dir, 'gpt2');
  await assert.rejects(CausalLM.load(dir, { dtype: 'float16' as 'float32' }), (e: unknown) => e instanceof TransformerError && e.kind === 'UnsupportedDtype');
  await assert.rejects(
    CausalLM.load(dir, { adapter: { method: 'lora', r: 2, alpha: 4, moraType: 1, targets: ['q_proj'], seed: 0 } }),
    (e: unknown) => e instanceof TransformerError && e.kind === 'NoTargetModules' && /c_attn/.test(e.message),
  );
  const model = await CausalLM.load(dir, {});
  const long = tf.zeros([1, 17], 'int32') as tf.Tensor2D;
  assert.throws(() => model.logits(long), (e: unknown) => e instanceof TransformerError && e.kind === 'BadInput');
  const floats = tf.zeros([1, 3]) as tf.Tensor2D;
  assert.throws(() => model.logits(floats), (e: unknown) => e instanceof TransformerError && e.kind === 'BadInput');
  tf.dispose([long, floats]);
  model.dispose();
});

test('weights that disagree with config.json are named errors and leave no tensors behind', async () => {
  const fs = await import('node:fs/promises');
  const dir = path.join(root.dir, 'broken');
  await fs.mkdir(dir);
  await writeTestModel(dir, { arch: 'llama', hidden: 32, layers: 2, heads: 4, vocab: 300, seed: 4 });
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(await fs.readFile(cfgFile, 'utf8'));
  const before = tf.memory().numTensors;
  await fs.writeFile(cfgFile, JSON.stringify({ ...cfg, intermediate_size: cfg.intermediate_size + 8 }));
  await assert.rejects(CausalLM.load(dir, {}), (e: unknown) => e instanceof ModelWeightsError && e.kind === 'ShapeMismatch' && /gate_proj/.test(e.message));
  await fs.writeFile(cfgFile, JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
  await assert.rejects(CausalLM.load(dir, {}), (e: unknown) => e instanceof ModelWeightsError && e.kind === 'TensorMissing' && /layers\.2\./.test(e.message));
  assert.equal(tf.memory().numTensors, before);
});
