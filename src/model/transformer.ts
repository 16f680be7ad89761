// CausalLM: a Hugging Face causal language model (llama, mistral, qwen2, gpt2) in TensorFlow.js with frozen base
// weights and trainable MoRA/LoRA adapters on the modules PEFT's target_modules selects.
import * as tf from '@tensorflow/tfjs';
import { matchesTarget, type AdapterModule } from '../adapters';
import { readModelConfig, type ModelConfig } from './config';
import { LoraLayer, MoraLayer, type AdapterLayer } from './adapterLayers';
import { hiddenStates, lmHead, maskedCrossEntropy, TableCache } from './forward';
import { activation } from './layers';
import { ropeInvFreq } from './rope';
import { adapterCandidates, disposeModelTensors, loadModelTensors, type ModelTensors } from './weights';
import { KindError } from '../util/kindError';

export interface AdapterSpec {
  method: 'mora' | 'lora';
  r: number; // LoRA rank; for MoRA the r that r̂ = floor(sqrt((in+out)·r) + 0.5) derives from
  alpha: number; // LoRA scaling alpha/r (MoRA ignores it: scaling 1)
  moraType: 1 | 6;
  targets: string[] | string; // PEFT target_modules: suffix names, a full-match regex, or "all-linear"
  seed: number; // LoRA A initialisation
}

export interface AdapterModuleInfo {
  path: string;
  method: 'mora' | 'lora';
  inF: number;
  outF: number;
  rHat?: number;
  A: tf.Variable; // LoRA A [r, in]; MoRA M [r̂, r̂]
  B?: tf.Variable; // LoRA B [out, r]
}

export class TransformerError extends KindError<'NoTargetModules' | 'AdapterMismatch' | 'BadInput' | 'UnsupportedDtype'> {
  override name = 'TransformerError';
}

export class CausalLM {
  private readonly tables: TableCache;

  private constructor(
    readonly config: ModelConfig,
    private readonly t: ModelTensors,
    private readonly adapters: AdapterLayer[],
    readonly adapterSpec?: AdapterSpec,
  ) {
    const inv = config.arch === 'gpt2' ? null : ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling);
    this.tables = new TableCache(inv, config.slidingWindow?.window);
  }

  /**
   * Reads config.json and the (sharded) safetensors weights of `dir`, one tensor at a time, as float32.
   * With an adapter spec, wraps every targeted Linear/Conv1D and keeps the backward copies of frozen weights.
   */
  static async load(dir: string, opts: { adapter?: AdapterSpec; dtype?: 'float32' } = {}): Promise<CausalLM> {
    if (opts.dtype !== undefined && opts.dtype !== 'float32') {
      throw new TransformerError('UnsupportedDtype', `dtype '${String(opts.dtype)}' is not supported (float32 only)`);
    }
    const config = await readModelConfig(dir);
    // Fail on unsupported activations or RoPE scaling before reading any weights.
    activation(config.activation);
    if (config.arch !== 'gpt2') ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling);
    const spec = opts.adapter;
    const t = await loadModelTensors(dir, config, spec !== undefined);
    const adapters: AdapterLayer[] = [];
    try {
      if (spec) {
        for (const l of adapterCandidates(t)) {
          if (!matchesTarget(spec.targets, l.path, { isLinear: true })) continue;
          l.adapter =
            spec.method === 'mora'
              ? new MoraLayer(l.path, l.inF, l.outF, spec.r, spec.moraType)
              : new LoraLayer(l.path, l.inF, l.outF, spec.r, spec.alpha / spec.r, spec.seed);
          adapters.push(l.adapter);
        }
        if (adapters.length === 0) {
          const names = [...new Set(adapterCandidates(t).map((l) => l.path.split('.').pop()))].join(', ');
          throw new TransformerError('NoTargetModules', `target_modules ${JSON.stringify(spec.targets)} match no module (linear modules: ${names})`);
        }
      }
    } catch (err) {
      for (const a of adapters) a.dispose();
      disposeModelTensors(t);
      throw err;
    }
    return new CausalLM(config, t, adapters, spec);
  }

  private checkIds(ids: tf.Tensor2D): void {
    if (ids.rank !== 2 || ids.dtype !== 'int32') throw new TransformerError('BadInput', `ids must be int32 [B, T], got ${ids.dtype} [${ids.shape}]`);
    if (this.config.arch === 'gpt2' && ids.shape[1] > this.config.maxPositions) {
      throw new TransformerError('BadInput', `sequence length ${ids.shape[1]} exceeds n_positions ${this.config.maxPositions}`);
    }
  }

  /** ids [B, T] int32 -> logits [B, T, V]. */
  logits(ids: tf.Tensor2D): tf.Tensor3D {
    this.checkIds(ids);
    const [B, T] = ids.shape;
    return tf.tidy(() => tf.reshape(lmHead(this.t, hiddenStates(this.t, this.config, ids, this.tables)), [B, T, this.config.vocab]));
  }

  /** Mean next-token cross-entropy; labels [B, T] int32 are already shifted (labels[t] is position t's target), −100 ignored. */
  loss(ids: tf.Tensor2D, labels: tf.Tensor2D): tf.Scalar {
    this.checkIds(ids);
    if (labels.shape[0] !== ids.shape[0] || labels.shape[1] !== ids.shape[1] || labels.dtype !== 'int32') {
      throw new TransformerError('BadInput', `labels must be int32 [${ids.shape}], got ${labels.dtype} [${labels.shape}]`);
    }
    const [B, T] = ids.shape;
    return tf.tidy(() => {
      const logits = lmHead(this.t, hiddenStates(this.t, this.config, ids, this.tables)); // [B·T, V]
      return maskedCrossEntropy(logits, tf.reshape(labels, [B * T]) as tf.Tensor1D);
    });
  }

  /** The adapter matrices, in module order (A then B per module); base weights are not variables. */
  trainableVariables(): tf.Variable[] {
    return this.adapters.flatMap((a) => (a.B ? [a.A, a.B] : [a.A]));
  }

  adapterModules(): AdapterModuleInfo[] {
    return this.adapters.map((a) => ({ path: a.path, method: a.method, inF: a.inF, outF: a.outF, rHat: a.rHat, A: a.A, B: a.B }));
  }

  /** Adapter tensors in PEFT layout: LoRA A [r, in], B [out, r]; MoRA A = M [r̂, r̂] and B = a copy of M. */
  async exportAdapter(): Promise<AdapterModule[]> {
    const out: AdapterModule[] = [];
    for (const a of this.adapters) {
      const A = (await a.A.data()) as Float32Array;
      if (a.method === 'mora') {
        out.push({ path: a.path, A, aShape: [...a.A.shape], B: A.slice(), bShape: [...a.A.shape] });
      } else {
        out.push({ path: a.path, A, aShape: [...a.A.shape], B: (await a.B!.data()) as Float32Array, bShape: [...a.B!.shape] });
      }
    }
    return out;
  }

  /** Overwrites every adapter matrix (resume / evaluation); the module set and shapes must match exactly. */
  loadAdapterWeights(modules: AdapterModule[]): void {
    const byPath = new Map(modules.map((m) => [m.path, m]));
    const mine = new Set(this.adapters.map((a) => a.path));
    const extra = modules.filter((m) => !mine.has(m.path)).map((m) => m.path);
    if (extra.length) throw new TransformerError('AdapterMismatch', `adapter has modules this model does not target: ${extra.join(', ')}`);
    for (const a of this.adapters) {
      const m = byPath.get(a.path);
      if (!m) throw new TransformerError('AdapterMismatch', `adapter lacks module ${a.path}`);
      const assign = (v: tf.Variable, data: Float32Array, shape: number[], what: string) => {
        if (shape.length !== v.shape.length || shape.some((s, i) => s !== v.shape[i]) || data.length !== v.size) {
          throw new TransformerError('AdapterMismatch', `${a.path} ${what}: shape [${shape}] does not match [${v.shape}]`);
        }
        const t = tf.tensor(data, v.shape);
        v.assign(t);
        t.dispose();
      };
      assign(a.A, m.A, m.aShape, a.method === 'mora' ? 'M' : 'lora_A');
      if (a.B) assign(a.B, m.B, m.bShape, 'lora_B');
    }
  }

  /** Greedy decoding without a KV cache (each step reruns the prefix); stops at eosId or after maxNew tokens. */
  async generate(prompt: number[], maxNew: number, eosId?: number): Promise<number[]> {
    const seq = [...prompt];
    const out: number[] = [];
    const window = this.config.arch === 'gpt2' ? this.config.maxPositions : Infinity;
    for (let i = 0; i < maxNew; i++) {
      const ctx = seq.length > window ? seq.slice(seq.length - window) : seq;
      const next = tf.tidy(() => {
        const ids = tf.tensor2d(ctx, [1, ctx.length], 'int32');
        const h = hiddenStates(this.t, this.config, ids, this.tables); // [T, H]
        const last = tf.slice(h, [ctx.length - 1, 0], [1, this.config.hidden]);
        return tf.argMax(lmHead(this.t, last), 1); // [1]
      });
      const id = (await next.data())[0];
      next.dispose();
      out.push(id);
      seq.push(id);
      if (eosId !== undefined && id === eosId) break;
    }
    return out;
  }

  dispose(): void {
    for (const a of this.adapters) a.dispose();
    disposeModelTensors(this.t);
    this.tables.dispose();
  }
}
