// Trainable adapters on a frozen linear layer, in TensorFlow.js: MoRA (types 1 and 6, as kongds/MoRA peft-mora
// `_apply_mora`) and LoRA. The matrices are tf.Variables stored in PEFT's layouts (LoRA A [r, in], B [out, r];
// MoRA M [r̂, r̂] acting like nn.Linear(r̂, r̂).weight), so exporting is a copy.
import * as tf from '@tensorflow/tfjs';
import { moraChunks, moraRank, type MoraType } from '../adapters';
import { Rng } from '../util/rng';
import { disposeFrozen, mm, type FrozenMatrix } from './fastLinear';
import { rotateHalf, rotationMatrix } from './rope';

export interface AdapterLayer {
  path: string; // HF module path, e.g. model.layers.0.self_attn.q_proj
  method: 'mora' | 'lora';
  inF: number;
  outF: number;
  r: number; // LoRA rank, or the r MoRA's r̂ was derived from
  rHat?: number; // MoRA only
  A: tf.Variable; // LoRA A [r, in]; MoRA M [r̂, r̂]
  B?: tf.Variable; // LoRA B [out, r]; absent for MoRA (PEFT's lora_B is the same module as lora_A)
  /** x [N, in] -> ΔW·x [N, out]. */
  apply(x: tf.Tensor2D): tf.Tensor2D;
  dispose(): void;
}

/** tf.Variable names are global to the engine; a second model in the same process gets a suffix. */
function uniqueName(base: string): string {
  const taken = tf.engine().registeredVariables;
  if (!(base in taken)) return base;
  let i = 1;
  while (`${base}#${i}` in taken) i++;
  return `${base}#${i}`;
}

/** A trainable variable from an initial value; the initial tensor is released (the variable keeps its data). */
function makeVariable(init: tf.Tensor, name: string): tf.Variable {
  const v = tf.variable(init, true, uniqueName(name));
  init.dispose();
  return v;
}

/** FNV-1a of the module path, mixed with the run seed: each module's init depends only on (seed, path). */
export function moduleSeed(seed: number, path: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class MoraLayer implements AdapterLayer {
  readonly method = 'mora' as const;
  readonly rHat: number;
  readonly A: tf.Variable; // M [r̂, r̂], zero at start so the adapted model equals the base model
  private readonly chunks: number; // ceil(in / r̂)
  private readonly cos?: tf.Tensor2D; // [chunks, r̂], type 6 only
  private readonly sin?: tf.Tensor2D;
  private readonly rot?: FrozenMatrix; // rotate_half over r̂, type 6 only

  constructor(
    readonly path: string,
    readonly inF: number,
    readonly outF: number,
    readonly r: number,
    readonly type: MoraType,
  ) {
    this.rHat = moraRank(inF, outF, r, type);
    this.chunks = moraChunks(inF, this.rHat);
    this.A = makeVariable(tf.zeros([this.rHat, this.rHat]), `${path}.mora_M`);
    if (type === 6) {
      // θ_j = 10000^(−2j/r̂) at chunk index c, frequencies repeated for both halves (rotate_half convention).
      const rh = this.rHat;
      const h = rh / 2;
      const cos = new Float32Array(this.chunks * rh);
      const sin = new Float32Array(this.chunks * rh);
      for (let j = 0; j < h; j++) {
        const inv = Math.fround(1 / Math.fround(Math.pow(10000, Math.fround((2 * j) / rh))));
        for (let c = 0; c < this.chunks; c++) {
          const a = Math.fround(c * inv);
          cos[c * rh + j] = cos[c * rh + j + h] = Math.cos(a);
          sin[c * rh + j] = sin[c * rh + j + h] = Math.sin(a);
        }
      }
      this.cos = tf.tensor2d(cos, [this.chunks, rh]);
      this.sin = tf.tensor2d(sin, [this.chunks, rh]);
      this.rot = rotationMatrix(rh);
    }
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    const n = x.shape[0];
    const rh = this.rHat;
    const L = this.chunks * rh; // padded input length
    // Padding repeats the first input columns (reference: cat([x, x[..., :pad]])), cyclically if pad > in.
    let xp: tf.Tensor2D = x; // [N, L]
    if (L > this.inF) {
      const reps = Math.ceil(L / this.inF);
      xp = tf.slice(tf.concat(new Array<tf.Tensor2D>(reps).fill(x), 1), [0, 0], [n, L]);
    }
    const mT = tf.transpose(this.A) as tf.Tensor2D; // y = u·Mᵀ, as nn.Linear
    if (this.type === 1) {
      const u = tf.sum(tf.reshape(xp, [n, this.chunks, rh]), 1) as tf.Tensor2D; // [N, chunks, r̂] -> [N, r̂]
      const y = mm(u, mT); // [N, r̂] x [r̂, r̂] -> [N, r̂]
      return this.expand(y, rh);
    }
    const c3 = tf.reshape(xp, [n, this.chunks, rh]); // [N, chunks, r̂]
    const rot = tf.add(tf.mul(c3, this.cos!), tf.mul(rotateHalf(c3, this.rot!), this.sin!)); // chunk c rotated at position c
    const y = mm(tf.reshape(rot, [n * this.chunks, rh]) as tf.Tensor2D, mT); // [N·chunks, r̂] x [r̂, r̂]
    return this.expand(tf.reshape(y, [n, L]) as tf.Tensor2D, L);
  }

  /** y [N, produced] -> [N, out]: truncate, or tile then truncate (reference: cat([y]*repeat)[..., :out]). */
  private expand(y: tf.Tensor2D, produced: number): tf.Tensor2D {
    const n = y.shape[0];
    if (produced === this.outF) return y;
    if (produced > this.outF) return tf.slice(y, [0, 0], [n, this.outF]);
    const reps = Math.ceil(this.outF / produced);
    return tf.slice(tf.concat(new Array<tf.Tensor2D>(reps).fill(y), 1), [0, 0], [n, this.outF]);
  }

  dispose(): void {
    this.A.dispose();
    this.cos?.dispose();
    this.sin?.dispose();
    if (this.rot) disposeFrozen(this.rot);
  }
}

export class LoraLayer implements AdapterLayer {
  readonly method = 'lora' as const;
  readonly A: tf.Variable; // [r, in], kaiming-uniform(a=√5) like nn.Linear: U(−1/√in, 1/√in)
  readonly B: tf.Variable; // [out, r], zero so the adapted model starts equal to the base model

  constructor(
    readonly path: string,
    readonly inF: number,
    readonly outF: number,
    readonly r: number,
    readonly scaling: number, // alpha / r
    seed: number,
  ) {
    const rng = new Rng(moduleSeed(seed, path));
    const bound = 1 / Math.sqrt(inF);
    const a = new Float32Array(r * inF);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    this.A = makeVariable(tf.tensor2d(a, [r, inF]), `${path}.lora_A`);
    this.B = makeVariable(tf.zeros([outF, r]), `${path}.lora_B`);
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    const h = mm(x, tf.transpose(this.A) as tf.Tensor2D); // [N, in] x [in, r] -> [N, r]
    const y = mm(h, tf.transpose(this.B) as tf.Tensor2D); // [N, r] x [r, out] -> [N, out]
    return tf.mul(y, this.scaling) as tf.Tensor2D;
  }

  dispose(): void {
    this.A.dispose();
    this.B.dispose();
  }
}
