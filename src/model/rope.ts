// Rotary position embeddings as in Hugging Face transformers (rotate_half convention: the head dimension is split
// into two halves, not interleaved pairs), with the config's rope_theta and rope_scaling.
import * as tf from '@tensorflow/tfjs';
import type { RopeScaling } from './config';
import { frozenMatMul, type FrozenMatrix } from './fastLinear';
import { KindError } from '../util/kindError';

/** rope_scaling types the forward pass implements; anything else is refused rather than silently mis-scaled. */
export const supportedRopeScaling = ['linear', 'llama3'] as const;

export class RopeError extends KindError<'UnsupportedRopeScaling' | 'InvalidRope'> {
  override name = 'RopeError';
}

/**
 * Inverse frequencies [headDim/2] (float64): θ_j = theta^(-2j/d), then scaled.
 * 'linear' divides every frequency by factor (positions are interpolated);
 * 'llama3' follows transformers' _compute_llama3_parameters: long wavelengths are divided by factor, short ones
 * kept, and the band between low_freq_factor and high_freq_factor is smoothly interpolated.
 * 'dynamic', 'yarn', 'longrope' etc. throw a RopeError naming the type.
 */
export function ropeInvFreq(headDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  if (headDim % 2 !== 0) throw new RopeError('InvalidRope', `head dimension ${headDim} must be even for RoPE`);
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let j = 0; j < half; j++) inv[j] = 1 / Math.pow(theta, (2 * j) / headDim);
  if (!scaling) return inv;
  const factor = scaling.factor;
  if (scaling.type === 'linear') {
    for (let j = 0; j < half; j++) inv[j] /= factor;
    return inv;
  }
  if (scaling.type === 'llama3') {
    const low = scaling.lowFreqFactor ?? 1; // transformers' defaults are written in every llama3 config
    const high = scaling.highFreqFactor ?? 4;
    const oldCtx = scaling.originalMaxPositions ?? 8192;
    const lowWavelen = oldCtx / low;
    const highWavelen = oldCtx / high;
    for (let j = 0; j < half; j++) {
      const wavelen = (2 * Math.PI) / inv[j];
      if (wavelen > lowWavelen) {
        inv[j] = inv[j] / factor;
      } else if (wavelen >= highWavelen) {
        const smooth = (oldCtx / wavelen - low) / (high - low);
        inv[j] = (1 - smooth) * (inv[j] / factor) + smooth * inv[j];
      }
    }
    return inv;
  }
  throw new RopeError(
    'UnsupportedRopeScaling',
    `rope_scaling type '${scaling.type}' is not supported (supported: ${supportedRopeScaling.join(', ')})`,
  );
}

/** cos/sin tables [T, headDim]: angle(t, j) = t·inv[j mod d/2] (frequencies repeated for both halves). */
export function ropeTables(inv: Float64Array, T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = inv.length;
  const d = 2 * half;
  const cos = new Float32Array(T * d);
  const sin = new Float32Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < half; j++) {
      const a = t * inv[j];
      const c = Math.cos(a);
      const s = Math.sin(a);
      cos[t * d + j] = c;
      cos[t * d + j + half] = c;
      sin[t * d + j] = s;
      sin[t * d + j + half] = s;
    }
  }
  return { cos: tf.tensor2d(cos, [T, d]), sin: tf.tensor2d(sin, [T, d]) };
}

/**
 * rotate_half as a product with a constant signed permutation R [d, d]: split/concat along the innermost axis is
 * slower in wasm than one plain matMul, and frozenMatMul's gradient is again a plain matMul (by Rᵀ).
 * The owner (a model's table cache, a MoRA layer) keeps and disposes it, so it lives on the current backend.
 */
export function rotationMatrix(d: number): FrozenMatrix {
  const h = d / 2;
  const m = new Float32Array(d * d); // [in, out]: out[j] = −in[j + h] (j < h), out[j] = in[j − h] (j ≥ h)
  for (let j = 0; j < h; j++) {
    m[(j + h) * d + j] = -1;
    m[j * d + j + h] = 1;
  }
  const io = tf.tensor2d(m, [d, d]);
  return { io, oi: tf.transpose(io) };
}

/** rotate_half: [x1, x2] -> [-x2, x1] along the last axis (any rank), with R = rotationMatrix(d). */
export function rotateHalf(x: tf.Tensor, rot: FrozenMatrix): tf.Tensor {
  const d = x.shape[x.rank - 1];
  return tf.reshape(frozenMatMul(tf.reshape(x, [-1, d]) as tf.Tensor2D, rot), x.shape);
}

export interface RopeTables {
  cos: tf.Tensor2D; // [T, d]
  sin: tf.Tensor2D; // [T, d]
  rot: FrozenMatrix; // rotate_half as [d, d]
}

/** x [B, heads, T, d] with cos/sin [T, d] broadcast over batch and heads: x·cos + rotate_half(x)·sin. */
export function applyRope(x: tf.Tensor4D, r: RopeTables): tf.Tensor4D {
  return tf.add(tf.mul(x, r.cos), tf.mul(rotateHalf(x, r.rot), r.sin)) as tf.Tensor4D;
}
