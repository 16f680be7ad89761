// AdamW (Loshchilov & Hutter) on plain Float32Arrays, plus global-norm gradient clipping.
// Adapter parameters are small (MoRA: r̂² per module), so doing the update in JS costs little, is identical on every
// backend, and makes the optimizer state trivially exportable for --resume. The math follows torch.optim.AdamW:
//   p ← p − lr·wd·p ;  m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps)
import { KindError } from '../util/kindError';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (not an L2 term in the gradient). */
  weightDecay: number;
}

export const defaultAdamW: AdamWOptions = {
  beta1: 0.9, // first-moment decay, as in PyTorch/PEFT defaults
  beta2: 0.999, // second-moment decay
  eps: 1e-8, // added to sqrt(v̂) for stability
  weightDecay: 0, // PEFT training scripts usually leave adapters undecayed
};

/** Everything needed to continue optimisation exactly: the step count and both moment buffers per parameter. */
export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

export class OptimizerError extends KindError<'shape-mismatch'> {
  override name = 'OptimizerError';
}

export class AdamW {
  readonly opts: AdamWOptions;
  /** Number of updates applied so far (t in the bias corrections). */
  step = 0;
  private m: Float32Array[];
  private v: Float32Array[];

  constructor(
    readonly sizes: number[],
    opts: Partial<AdamWOptions> = {},
  ) {
    this.opts = { ...defaultAdamW, ...opts };
    this.m = sizes.map((n) => new Float32Array(n));
    this.v = sizes.map((n) => new Float32Array(n));
  }

  /** Applies one update in place to `params` with gradients `grads` (same order and sizes as `sizes`). */
  update(params: Float32Array[], grads: Float32Array[], lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.opts;
    this.step++;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    const decay = 1 - lr * weightDecay;
    for (let i = 0; i < params.length; i++) {
      const p = params[i];
      const g = grads[i];
      const m = this.m[i];
      const v = this.v[i];
      if (p.length !== this.sizes[i] || g.length !== this.sizes[i]) {
        throw new OptimizerError('shape-mismatch', `parameter ${i}: expected ${this.sizes[i]} values, got ${p.length}/${g.length}`);
      }
      for (let j = 0; j < p.length; j++) {
        const gj = g[j];
        m[j] = beta1 * m[j] + (1 - beta1) * gj;
        v[j] = beta2 * v[j] + (1 - beta2) * gj * gj;
        const mhat = m[j] / bc1;
        const vhat = v[j] / bc2;
        p[j] = p[j] * decay - (lr * mhat) / (Math.sqrt(vhat) + eps);
      }
    }
  }

  exportState(): AdamWState {
    return { step: this.step, m: this.m.map((x) => x.slice()), v: this.v.map((x) => x.slice()) };
  }

  importState(s: AdamWState): void {
    if (s.m.length !== this.sizes.length || s.v.length !== this.sizes.length) {
      throw new OptimizerError('shape-mismatch', `optimizer state has ${s.m.length} parameters, the model has ${this.sizes.length}`);
    }
    s.m.forEach((x, i) => {
      if (x.length !== this.sizes[i] || s.v[i].length !== this.sizes[i]) {
        throw new OptimizerError('shape-mismatch', `optimizer state for parameter ${i} has ${x.length} values, expected ${this.sizes[i]}`);
      }
    });
    this.step = s.step;
    this.m = s.m.map((x) => x.slice());
    this.v = s.v.map((x) => x.slice());
  }
}

/** L2 norm over all gradients together (computed in float64). */
export function globalNorm(grads: Float32Array[]): number {
  let s = 0;
  for (const g of grads) for (let j = 0; j < g.length; j++) s += g[j] * g[j];
  return Math.sqrt(s);
}

/**
 * Scales gradients in place so their global norm is at most `maxNorm` (as torch.nn.utils.clip_grad_norm_:
 * coefficient maxNorm / (norm + 1e-6), capped at 1). Returns the norm before clipping. maxNorm <= 0 disables.
 */
export function clipGradients(grads: Float32Array[], maxNorm: number): number {
  const norm = globalNorm(grads);
  if (maxNorm > 0) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) for (const g of grads) for (let j = 0; j < g.length; j++) g[j] *= coef;
  }
  return norm;
}
