// Element-wise pieces of the transformer: norms, activations and the linear layer wrapper that adds an adapter.
import * as tf from '@tensorflow/tfjs';
import type { AdapterLayer } from './adapterLayers';
import { frozenMatMul, type FrozenMatrix } from './fastLinear';

/** RMSNorm as LlamaRMSNorm: x / sqrt(mean(x²) + eps) · w.  x [N, H], w [H] -> [N, H]. */
export function rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const ms = tf.mean(tf.square(x), -1, true); // [N, 1]
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w) as tf.Tensor2D;
}

/** LayerNorm (biased variance, as torch): (x − μ) / sqrt(σ² + eps) · w + b.  x [N, H] -> [N, H]. */
export function layerNorm(x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  const mu = tf.mean(x, -1, true); // [N, 1]
  const xc = tf.sub(x, mu);
  const v = tf.mean(tf.square(xc), -1, true); // [N, 1]
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(v, eps))), w), b) as tf.Tensor2D;
}

/** GPT-2's gelu_new (tanh approximation): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: tf.Tensor2D): tf.Tensor2D {
  const c = Math.sqrt(2 / Math.PI);
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), c);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as tf.Tensor2D;
}

/** Exact erf GELU (activation 'gelu'), using tfjs's erf. */
export function geluErf(x: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)) as tf.Tensor2D;
}

/** SiLU: x·σ(x). */
export function silu(x: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(x, tf.sigmoid(x)) as tf.Tensor2D;
}

export class ActivationError extends Error {
  override name = 'ActivationError';
  readonly kind = 'UnsupportedActivation';
}

/** Maps a config activation name to its function; unknown names get a named error. */
export function activation(name: string): (x: tf.Tensor2D) => tf.Tensor2D {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu;
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return geluTanh;
    case 'gelu':
      return geluErf;
    default:
      throw new ActivationError(`activation '${name}' is not supported (silu, gelu_new, gelu_pytorch_tanh, gelu)`);
  }
}

/** A frozen Linear / Conv1D with optional bias and optional trainable adapter, addressed by its HF module path. */
export interface Linear {
  path: string; // e.g. model.layers.0.self_attn.q_proj
  inF: number;
  outF: number;
  w: FrozenMatrix;
  bias?: tf.Tensor1D; // [out]
  fanInFanOut: boolean; // GPT-2 Conv1D: stored weight is [in, out]
  adapter?: AdapterLayer;
}

/** y = x·Wᵀ (+ b) (+ adapter(x)).  x [N, in] -> [N, out]. */
export function linear(l: Linear, x: tf.Tensor2D): tf.Tensor2D {
  let y = frozenMatMul(x, l.w);
  if (l.bias) y = tf.add(y, l.bias);
  if (l.adapter) y = tf.add(y, l.adapter.apply(x));
  return y;
}
