// Loads a Hugging Face model folder's weights into frozen tf tensors, one tensor at a time (each read converts
// F16/BF16 to F32 on its own, so peak extra memory is one tensor), checking every shape against config.json.
import * as tf from '@tensorflow/tfjs';
import { ModelWeights } from '../safetensors';
import type { ModelConfig } from './config';
import { disposeFrozen, frozenMatrix, type FrozenMatrix } from './fastLinear';
import type { Linear } from './layers';
import { KindError } from '../util/kindError';

export class ModelWeightsError extends KindError<'TensorMissing' | 'ShapeMismatch'> {
  override name = 'ModelWeightsError';
}

export interface LlamaBlock {
  kind: 'llama';
  inNorm: tf.Tensor1D; // [H]
  q: Linear; // [H] -> [heads·d]
  k: Linear; // [H] -> [kv·d]
  v: Linear; // [H] -> [kv·d]
  o: Linear; // [heads·d] -> [H]
  postNorm: tf.Tensor1D; // [H]
  gate: Linear; // [H] -> [I]
  up: Linear; // [H] -> [I]
  down: Linear; // [I] -> [H]
}

export interface Gpt2Block {
  kind: 'gpt2';
  ln1: { w: tf.Tensor1D; b: tf.Tensor1D };
  cAttn: Linear; // Conv1D [H] -> [3H] (q, k, v fused)
  attnProj: Linear; // Conv1D [H] -> [H]
  ln2: { w: tf.Tensor1D; b: tf.Tensor1D };
  fc: Linear; // Conv1D [H] -> [I]
  mlpProj: Linear; // Conv1D [I] -> [H]
}

export interface ModelTensors {
  embed: tf.Tensor2D; // [V, H]
  pos?: tf.Tensor2D; // [P, H], GPT-2 learned positions
  blocks: (LlamaBlock | Gpt2Block)[];
  norm: { w: tf.Tensor1D; b?: tf.Tensor1D }; // final RMSNorm (llama) or LayerNorm (gpt2)
  head: FrozenMatrix; // io [H, V], oi [V, H] (oi is `embed` itself when embeddings are tied)
}

/** Every Linear an adapter may wrap, in model order (the output head is never a target, as in PEFT all-linear). */
export function adapterCandidates(t: ModelTensors): Linear[] {
  return t.blocks.flatMap((b) =>
    b.kind === 'llama' ? [b.q, b.k, b.v, b.o, b.gate, b.up, b.down] : [b.cAttn, b.attnProj, b.fc, b.mlpProj],
  );
}

class Loader {
  private readonly names: Set<string>;
  /** Everything created so far, freed if loading fails half-way. */
  readonly created: tf.Tensor[] = [];

  constructor(
    private readonly mw: ModelWeights,
    private readonly withBackward: boolean,
  ) {
    this.names = new Set(mw.names());
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  async tensor(name: string, shape: number[]): Promise<tf.Tensor> {
    if (!this.has(name)) throw new ModelWeightsError('TensorMissing', `weights have no tensor '${name}'`);
    const got = this.mw.info(name).shape;
    if (got.length !== shape.length || got.some((s, i) => s !== shape[i])) {
      throw new ModelWeightsError('ShapeMismatch', `${name}: shape [${got}] does not match config.json's [${shape}]`);
    }
    return this.track(tf.tensor(await this.mw.readFloat32(name), shape));
  }

  track<T extends tf.Tensor | undefined>(t: T): T {
    if (t) this.created.push(t);
    return t;
  }

  /** nn.Linear ([out, in]) or, with fanInFanOut, GPT-2 Conv1D ([in, out]). */
  async linear(weightPrefix: string, path: string, inF: number, outF: number, bias: boolean, fanInFanOut: boolean): Promise<Linear> {
    const w = (await this.tensor(`${weightPrefix}.weight`, fanInFanOut ? [inF, outF] : [outF, inF])) as tf.Tensor2D;
    const b = bias ? ((await this.tensor(`${weightPrefix}.bias`, [outF])) as tf.Tensor1D) : undefined;
    const m = frozenMatrix(w, fanInFanOut ? 'io' : 'oi', this.withBackward);
    this.track(m.io);
    this.track(m.oi);
    return { path, inF, outF, w: m, bias: b, fanInFanOut };
  }

  async vec(name: string, n: number): Promise<tf.Tensor1D> {
    return (await this.tensor(name, [n])) as tf.Tensor1D;
  }
}

async function loadLlama(ld: Loader, c: ModelConfig, withBackward: boolean): Promise<ModelTensors> {
  const H = c.hidden;
  const qOut = c.heads * c.headDim;
  const kvOut = c.kvHeads * c.headDim;
  const embed = (await ld.tensor('model.embed_tokens.weight', [c.vocab, H])) as tf.Tensor2D;
  const blocks: LlamaBlock[] = [];
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    const lin = (m: string, inF: number, outF: number, bias: boolean) => ld.linear(`${p}.${m}`, `${p}.${m}`, inF, outF, bias, false);
    blocks.push({
      kind: 'llama',
      inNorm: await ld.vec(`${p}.input_layernorm.weight`, H),
      q: await lin('self_attn.q_proj', H, qOut, c.qkvBias),
      k: await lin('self_attn.k_proj', H, kvOut, c.qkvBias),
      v: await lin('self_attn.v_proj', H, kvOut, c.qkvBias),
      o: await lin('self_attn.o_proj', qOut, H, c.oBias),
      postNorm: await ld.vec(`${p}.post_attention_layernorm.weight`, H),
      gate: await lin('mlp.gate_proj', H, c.intermediate, c.mlpBias),
      up: await lin('mlp.up_proj', H, c.intermediate, c.mlpBias),
      down: await lin('mlp.down_proj', c.intermediate, H, c.mlpBias),
    });
  }
  const norm = { w: await ld.vec('model.norm.weight', H) };
  // Tied checkpoints may still carry a copy of lm_head.weight (ignored); an untied one must have it.
  if (!c.tieEmbeddings && !ld.has('lm_head.weight')) {
    throw new ModelWeightsError('TensorMissing', "weights have no tensor 'lm_head.weight' and tie_word_embeddings is false");
  }
  const head: FrozenMatrix = c.tieEmbeddings
    ? { io: ld.track(tf.transpose(embed)), oi: withBackward ? embed : undefined } // [H, V], [V, H]
    : frozenMatrix((await ld.tensor('lm_head.weight', [c.vocab, H])) as tf.Tensor2D, 'oi', withBackward);
  ld.track(head.io);
  return { embed, blocks, norm, head };
}

async function loadGpt2(ld: Loader, c: ModelConfig, withBackward: boolean): Promise<ModelTensors> {
  const H = c.hidden;
  // save_pretrained of GPT2LMHeadModel prefixes 'transformer.'; the original OpenAI conversion does not. The module
  // path (what PEFT's target_modules sees) always has the prefix.
  const wp = ld.has('transformer.wte.weight') ? 'transformer.' : '';
  const embed = (await ld.tensor(`${wp}wte.weight`, [c.vocab, H])) as tf.Tensor2D;
  const pos = (await ld.tensor(`${wp}wpe.weight`, [c.maxPositions, H])) as tf.Tensor2D;
  const blocks: Gpt2Block[] = [];
  for (let i = 0; i < c.layers; i++) {
    const p = `h.${i}`;
    const conv = (m: string, inF: number, outF: number) => ld.linear(`${wp}${p}.${m}`, `transformer.${p}.${m}`, inF, outF, true, true);
    const ln = async (m: string) => ({ w: await ld.vec(`${wp}${p}.${m}.weight`, H), b: await ld.vec(`${wp}${p}.${m}.bias`, H) });
    blocks.push({
      kind: 'gpt2',
      ln1: await ln('ln_1'),
      cAttn: await conv('attn.c_attn', H, 3 * H),
      attnProj: await conv('attn.c_proj', H, H),
      ln2: await ln('ln_2'),
      fc: await conv('mlp.c_fc', H, c.intermediate),
      mlpProj: await conv('mlp.c_proj', c.intermediate, H),
    });
  }
  const norm = { w: await ld.vec(`${wp}ln_f.weight`, H), b: await ld.vec(`${wp}ln_f.bias`, H) };
  // GPT-2's head is always the (tied) token embedding.
  const head: FrozenMatrix = { io: ld.track(tf.transpose(embed)), oi: withBackward ? embed : undefined };
  return { embed, pos, blocks, norm, head };
}

/** Reads all base weights of `dir` as frozen float32 tensors. `withBackward` keeps the [out, in] copies too. */
export async function loadModelTensors(dir: string, c: ModelConfig, withBackward: boolean): Promise<ModelTensors> {
  const mw = await ModelWeights.open(dir);
  const ld = new Loader(mw, withBackward);
  try {
    return c.arch === 'gpt2' ? await loadGpt2(ld, c, withBackward) : await loadLlama(ld, c, withBackward);
  } catch (err) {
    tf.dispose(ld.created);
    throw err;
  } finally {
    await mw.close();
  }
}

/** Frees every base tensor (adapters are disposed by their owner). */
export function disposeModelTensors(t: ModelTensors): void {
  t.embed.dispose();
  t.pos?.dispose();
  for (const l of adapterCandidates(t)) {
    disposeFrozen(l.w);
    l.bias?.dispose();
  }
  for (const b of t.blocks) {
    if (b.kind === 'llama') tf.dispose([b.inNorm, b.postNorm]);
    else tf.dispose([b.ln1.w, b.ln1.b, b.ln2.w, b.ln2.b]);
  }
  tf.dispose([t.norm.w, ...(t.norm.b ? [t.norm.b] : [])]);
  disposeFrozen(t.head); // disposing `embed` twice when tied is a no-op
}
