// One optimizer step, shared by the training loop and the benchmark: gradients of the mean loss over micro-batches
// (read back into Float32Arrays), global-norm clipping, the AdamW update in JS, and the write-back to the variables.
import * as tf from '@tensorflow/tfjs';
import type { Batch } from './sampler';
import { clipGradients, type AdamW } from './optimizer';

/** The model surface a step needs (CausalLM provides it). */
export interface LossModel {
  /** ids, labels [B, T] int32 (labels already shifted, -100 ignored) -> mean cross-entropy scalar. */
  loss(ids: tf.Tensor2D, labels: tf.Tensor2D): tf.Scalar;
}

/** Mean loss and mean gradients over `batches` (gradient accumulation). */
export async function accumulateGradients(model: LossModel, vars: tf.Variable[], batches: Batch[]): Promise<{ loss: number; grads: Float32Array[] }> {
  const grads = vars.map((v) => new Float32Array(v.size));
  let loss = 0;
  const k = batches.length;
  for (const b of batches) {
    const ids = tf.tensor2d(b.ids, [b.batch, b.seqLen], 'int32');
    const labels = tf.tensor2d(b.labels, [b.batch, b.seqLen], 'int32');
    const { value, grads: g } = tf.variableGrads(() => model.loss(ids, labels), vars);
    try {
      loss += (await value.data())[0] / k;
      for (let i = 0; i < vars.length; i++) {
        const gi = await g[vars[i].name].data();
        const acc = grads[i];
        for (let j = 0; j < acc.length; j++) acc[j] += gi[j] / k;
      }
    } finally {
      tf.dispose([ids, labels, value, ...Object.values(g)]);
    }
  }
  return { loss, grads };
}

/** Clips, updates `params` (the JS copy of the variables) with AdamW and writes them back. Returns the pre-clip norm. */
export function applyUpdate(vars: tf.Variable[], params: Float32Array[], grads: Float32Array[], opt: AdamW, lr: number, clip: number): number {
  const norm = clipGradients(grads, clip);
  opt.update(params, grads, lr);
  vars.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(params[i], v.shape, 'float32'))));
  return norm;
}
