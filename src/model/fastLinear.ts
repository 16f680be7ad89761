// Matrix products whose backward pass uses only plain (non-transposed) matMul kernels.
//
// Why: in the wasm backend a plain 2-D matMul runs at ~25–30 GFLOP/s while its transposed variants (which autodiff
// uses for dX = dY·Wᵀ and dW = Xᵀ·dY) run at ~2 GFLOP/s. Frozen weights are therefore kept in both layouts
// ([in, out] for the forward product, [out, in] for the input gradient), and trainable products transpose
// explicitly (a cheap memory copy) before a plain matMul.
import * as tf from '@tensorflow/tfjs';

/**
 * When false, every product below is a plain tf.matMul with tfjs's own gradients (transposed kernels in the
 * backward pass). Only for measuring the difference and for the gradient-equality test.
 */
let customGradients = true;
export function setCustomGradients(on: boolean): void {
  customGradients = on;
}

/** A frozen weight in both layouts. `oi` is only needed when gradients flow through the layer. */
export interface FrozenMatrix {
  io: tf.Tensor2D; // [in, out]: forward y = x · io
  oi?: tf.Tensor2D; // [out, in]: backward dx = dy · oi
}

/**
 * Builds a FrozenMatrix from a weight stored as [out, in] (torch nn.Linear) or [in, out] (GPT-2 Conv1D).
 * Takes ownership of `w` (it is kept as one of the two layouts or disposed).
 */
export function frozenMatrix(w: tf.Tensor2D, layout: 'oi' | 'io', withBackward: boolean): FrozenMatrix {
  if (layout === 'io') {
    if (!withBackward) return { io: w };
    return { io: w, oi: tf.transpose(w) };
  }
  const io = tf.transpose(w);
  if (!withBackward) {
    w.dispose();
    return { io };
  }
  return { io, oi: w };
}

export function disposeFrozen(m: FrozenMatrix): void {
  m.io.dispose();
  m.oi?.dispose();
}

/** x [N, in] · W -> [N, out]; the gradient reaches x only (W is frozen): dx = dy [N, out] · W_oi [out, in]. */
export function frozenMatMul(x: tf.Tensor2D, w: FrozenMatrix): tf.Tensor2D {
  if (!customGradients) return tf.matMul(x, w.io);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.matMul(args[0] as tf.Tensor2D, w.io),
    gradFunc: (dy: tf.Tensor) => {
      if (!w.oi) throw new Error('frozenMatMul: this model was loaded without backward weights');
      return tf.matMul(dy as tf.Tensor2D, w.oi);
    },
  }));
  return f(x) as tf.Tensor2D;
}

/** Swaps the last two axes of a 2-D or 3-D tensor. */
function swapLast(t: tf.Tensor): tf.Tensor {
  return t.rank === 2 ? tf.transpose(t) : tf.transpose(t, [0, 2, 1]);
}

/**
 * a · b for trainable or activation operands, 2-D ([M,K]·[K,N]) or batched 3-D ([B,M,K]·[B,K,N]).
 * Gradients: da = dy · bᵀ, db = aᵀ · dy, with the transposes done as explicit copies so that only plain
 * matMul kernels run.
 */
export function mm<T extends tf.Tensor2D | tf.Tensor3D>(a: T, b: T): T {
  if (!customGradients) return tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D) as T;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [aIn, bIn, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([aIn, bIn]);
    return {
      value: tf.matMul(aIn as tf.Tensor3D, bIn as tf.Tensor3D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved;
        return [
          tf.matMul(dy as tf.Tensor3D, swapLast(sb) as tf.Tensor3D), // [.., M, N] · [.., N, K] -> [.., M, K]
          tf.matMul(swapLast(sa) as tf.Tensor3D, dy as tf.Tensor3D), // [.., K, M] · [.., M, N] -> [.., K, N]
        ];
      },
    };
  });
  return f(a, b) as T;
}
