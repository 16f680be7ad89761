// The decoder stack: token ids -> final hidden states -> logits, for LLaMA-family and GPT-2 blocks.
import * as tf from '@tensorflow/tfjs';
import { causalAttention, causalMask } from './attention';
import type { ModelConfig } from './config';
import { activation, layerNorm, linear, rmsNorm } from './layers';
import { disposeFrozen, frozenMatMul, type FrozenMatrix } from './fastLinear';
import { ropeTables, rotationMatrix, type RopeTables } from './rope';
import type { Gpt2Block, LlamaBlock, ModelTensors } from './weights';

/** Per-length constants (masks, RoPE tables), built once and kept outside any tidy. */
export interface LengthTables {
  mask: tf.Tensor2D; // [T, T]
  windowMask: tf.Tensor2D; // [T, T], the sliding-window mask (the same tensor as `mask` when the window covers T)
  rope?: RopeTables; // cos/sin [T, headDim]
}

// Lengths kept at once. Training uses one or two; generation without a KV cache asks for every length in turn, and
// keeping them all would hold O(T³) bytes of masks.
const KEPT_LENGTHS = 4;

export class TableCache {
  private readonly byLength = new Map<number, LengthTables>(); // insertion order = least recently used first
  private rot?: FrozenMatrix; // rotate_half for the head dimension, shared by every length
  constructor(
    private readonly invFreq: Float64Array | null,
    private readonly window = Infinity,
  ) {}

  get(T: number): LengthTables {
    let t = this.byLength.get(T);
    if (t) {
      this.byLength.delete(T);
      this.byLength.set(T, t);
      return t;
    }
    // A forward pass asks for its tables once, before any op, so older lengths are no longer in use here.
    while (this.byLength.size >= KEPT_LENGTHS) {
      const [oldest, old] = this.byLength.entries().next().value as [number, LengthTables];
      this.byLength.delete(oldest);
      disposeTables(old);
    }
    const mask = tf.keep(causalMask(T));
    t = { mask, windowMask: this.window < T ? tf.keep(causalMask(T, this.window)) : mask };
    if (this.invFreq) {
      const { cos, sin } = ropeTables(this.invFreq, T);
      if (!this.rot) {
        const r = rotationMatrix(2 * this.invFreq.length);
        this.rot = { io: tf.keep(r.io), oi: tf.keep(r.oi!) };
      }
      t.rope = { cos: tf.keep(cos), sin: tf.keep(sin), rot: this.rot };
    }
    this.byLength.set(T, t);
    return t;
  }

  /** Lengths currently cached, least recently used first (for tests). */
  get lengths(): number[] {
    return [...this.byLength.keys()];
  }

  dispose(): void {
    for (const t of this.byLength.values()) disposeTables(t);
    this.byLength.clear();
    if (this.rot) disposeFrozen(this.rot);
    this.rot = undefined;
  }
}

function disposeTables(t: LengthTables): void {
  tf.dispose([t.mask, ...(t.windowMask !== t.mask ? [t.windowMask] : []), ...(t.rope ? [t.rope.cos, t.rope.sin] : [])]);
}

function llamaBlock(b: LlamaBlock, x: tf.Tensor2D, c: ModelConfig, B: number, T: number, tab: LengthTables, layer: number): tf.Tensor2D {
  const act = activation(c.activation);
  const a = rmsNorm(x, b.inNorm, c.normEps); // [N, H]
  const shape = { B, T, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim };
  const mask = c.slidingWindow && layer >= c.slidingWindow.fromLayer ? tab.windowMask : tab.mask;
  const att = causalAttention(linear(b.q, a), linear(b.k, a), linear(b.v, a), shape, mask, tab.rope); // [N, heads·d]
  const h = tf.add(x, linear(b.o, att)) as tf.Tensor2D;
  const m = rmsNorm(h, b.postNorm, c.normEps);
  const gated = tf.mul(act(linear(b.gate, m)), linear(b.up, m)) as tf.Tensor2D; // SwiGLU: [N, I]
  return tf.add(h, linear(b.down, gated)) as tf.Tensor2D;
}

function gpt2Block(b: Gpt2Block, x: tf.Tensor2D, c: ModelConfig, B: number, T: number, tab: LengthTables): tf.Tensor2D {
  const H = c.hidden;
  const a = layerNorm(x, b.ln1.w, b.ln1.b, c.normEps);
  const [q, k, v] = tf.split(linear(b.cAttn, a), [H, H, H], 1) as tf.Tensor2D[]; // [N, 3H] -> 3 × [N, H]
  const shape = { B, T, heads: c.heads, kvHeads: c.heads, headDim: c.headDim };
  const h = tf.add(x, linear(b.attnProj, causalAttention(q, k, v, shape, tab.mask))) as tf.Tensor2D;
  const m = layerNorm(h, b.ln2.w, b.ln2.b, c.normEps);
  return tf.add(h, linear(b.mlpProj, activation(c.activation)(linear(b.fc, m)))) as tf.Tensor2D;
}

/** ids [B, T] int32 -> final-normed hidden states [B·T, H]. */
export function hiddenStates(t: ModelTensors, c: ModelConfig, ids: tf.Tensor2D, tables: TableCache): tf.Tensor2D {
  const [B, T] = ids.shape;
  const tab = tables.get(T);
  let x = tf.gather(t.embed, tf.reshape(ids, [B * T])) as tf.Tensor2D; // [B·T, H]
  if (t.pos) {
    const p = tf.slice(t.pos, [0, 0], [T, c.hidden]); // [T, H] broadcast over the batch
    x = tf.reshape(tf.add(tf.reshape(x, [B, T, c.hidden]), p), [B * T, c.hidden]);
  }
  t.blocks.forEach((b, layer) => {
    x = b.kind === 'llama' ? llamaBlock(b, x, c, B, T, tab, layer) : gpt2Block(b, x, c, B, T, tab);
  });
  return c.arch === 'gpt2' ? layerNorm(x, t.norm.w, t.norm.b!, c.normEps) : rmsNorm(x, t.norm.w, c.normEps);
}

/** h [N, H] -> logits [N, V] through the (possibly tied) output head. */
export function lmHead(t: ModelTensors, h: tf.Tensor2D): tf.Tensor2D {
  return frozenMatMul(h, t.head);
}

/**
 * Mean cross-entropy over positions whose label is not −100: logits [N, V], labels [N] int32 -> scalar.
 * A batch with no labelled position gives 0 rather than NaN.
 */
export function maskedCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const V = logits.shape[1];
  const valid = tf.notEqual(labels, -100); // [N] bool
  const safe = tf.where(valid, labels, tf.zerosLike(labels)); // [N] int32, ignored rows read column 0
  const logp = tf.logSoftmax(logits); // [N, V]
  // A one-hot product rather than a gather: gather's gradient needs UnsortedSegmentSum, which wasm lacks
  // (and wasm's OneHot writes int32 whatever dtype is asked, hence the cast).
  const picked = tf.sum(tf.mul(logp, tf.cast(tf.oneHot(safe, V), 'float32')), 1); // [N]
  const w = tf.cast(valid, 'float32');
  const count = tf.maximum(tf.sum(w), 1);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, w))), count) as tf.Scalar;
}
