// Causal multi-head self-attention with grouped-query attention and optional RoPE, on already projected q, k, v.
import * as tf from '@tensorflow/tfjs';
import { mm } from './fastLinear';
import { applyRope, type RopeTables } from './rope';

export interface AttentionShape {
  B: number; // batch
  T: number; // sequence length
  heads: number;
  kvHeads: number; // heads % kvHeads === 0; each group of heads/kvHeads query heads shares one k/v head
  headDim: number;
}

/**
 * [T, T] additive causal mask: 0 where query i may read key j, −1e9 elsewhere (exp underflows to exactly 0). Keys
 * after the query are hidden; with a sliding `window`, so are keys j ≤ i − window (HF: `kv_idx > q_idx − window`).
 */
export function causalMask(T: number, window = Infinity): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) if (j > i || j <= i - window) m[i * T + j] = -1e9;
  }
  return tf.tensor2d(m, [T, T]);
}

/** [B·T, n·d] -> [B, n, T, d] */
function splitHeads(x: tf.Tensor2D, B: number, T: number, n: number, d: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(x, [B, T, n, d]), [0, 2, 1, 3]);
}

/** HF repeat_kv: [B, kv, T, d] -> [B, kv·rep, T, d], query head h reads k/v head floor(h / rep). */
function repeatKv(x: tf.Tensor4D, rep: number): tf.Tensor4D {
  if (rep === 1) return x;
  const [B, kv, T, d] = x.shape;
  // Concat of copies, not tf.tile: wasm's Tile is ~100× slower than a Concat of the same size.
  const x3 = tf.reshape(x, [B * kv, 1, T * d]);
  return tf.reshape(tf.concat(new Array<tf.Tensor>(rep).fill(x3), 1), [B, kv * rep, T, d]);
}

/**
 * softmax(q·kᵀ/√d + mask)·v per head.
 * q [B·T, heads·d], k/v [B·T, kvHeads·d], rope cos/sin [T, d] (omitted for learned positions) -> [B·T, heads·d].
 */
export function causalAttention(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  s: AttentionShape,
  mask: tf.Tensor2D,
  rope?: RopeTables,
): tf.Tensor2D {
  const { B, T, heads, kvHeads, headDim: d } = s;
  let q4 = splitHeads(q, B, T, heads, d); // [B, H, T, d]
  let k4 = splitHeads(k, B, T, kvHeads, d); // [B, KV, T, d]
  const v4 = repeatKv(splitHeads(v, B, T, kvHeads, d), heads / kvHeads); // [B, H, T, d]
  if (rope) {
    q4 = applyRope(q4, rope);
    k4 = applyRope(k4, rope);
  }
  k4 = repeatKv(k4, heads / kvHeads);
  const bh = B * heads;
  const q3 = tf.reshape(q4, [bh, T, d]) as tf.Tensor3D;
  const kT = tf.transpose(tf.reshape(k4, [bh, T, d]), [0, 2, 1]) as tf.Tensor3D; // [BH, d, T]
  const scores = tf.add(tf.mul(mm(q3, kT), 1 / Math.sqrt(d)), mask); // [BH, T, d] x [BH, d, T] -> [BH, T, T]
  const p = tf.softmax(scores) as tf.Tensor3D;
  const o = mm(p, tf.reshape(v4, [bh, T, d]) as tf.Tensor3D); // [BH, T, T] x [BH, T, d] -> [BH, T, d]
  return tf.reshape(tf.transpose(tf.reshape(o, [B, heads, T, d]), [0, 2, 1, 3]), [B * T, heads * d]);
}
