import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { float32ToBytes, writeSafetensors, type Dtype, type TensorToWrite } from '../safetensors';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic';
import { Rng } from '../util/rng';
import { makeByteLevelTokenizer } from './tokenizer';

/** Options of `mora make-tiny-model`; the defaults make a ~0.2M-parameter model that trains in seconds. */
export interface TinyModelOptions {
  arch: 'llama' | 'qwen2' | 'gpt2';
  hidden: number; // hidden size (d_model)
  layers: number;
  heads: number;
  kvHeads?: number; // grouped-query attention; defaults to heads (gpt2 ignores it)
  intermediate?: number; // MLP width; defaults to 4·hidden for gpt2, ~2.7·hidden rounded to 8 for llama/qwen2
  vocab?: number; // embedding rows; at least the 259 tokens of the byte-level tokenizer
  maxPositions?: number;
  seed: number;
  dtype?: 'F32' | 'F16' | 'BF16'; // storage dtype of the weights
  maxShardBytes?: number; // split into model-0000i-of-0000n.safetensors + index json above this size
  tieEmbeddings?: boolean; // defaults: qwen2 and gpt2 tie, llama does not
}

export const tinyDefaults = { arch: 'llama', hidden: 64, layers: 2, heads: 4, vocab: 320, seed: 0 } as const;

const initStd = 0.02; // HF initializer_range

interface TensorSpec {
  name: string;
  shape: number[];
  init: 'normal' | 'norm' | 'bias';
}

function llamaTensors(o: Required<TinyModelOptions>): { specs: TensorSpec[]; config: object } {
  const headDim = o.hidden / o.heads;
  const kv = o.kvHeads * headDim;
  const qwen = o.arch === 'qwen2';
  const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [o.vocab, o.hidden], init: 'normal' }];
  for (let i = 0; i < o.layers; i++) {
    const p = `model.layers.${i}`;
    specs.push(
      { name: `${p}.input_layernorm.weight`, shape: [o.hidden], init: 'norm' },
      { name: `${p}.self_attn.q_proj.weight`, shape: [o.hidden, o.hidden], init: 'normal' },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, o.hidden], init: 'normal' },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, o.hidden], init: 'normal' },
      { name: `${p}.self_attn.o_proj.weight`, shape: [o.hidden, o.hidden], init: 'normal' },
      { name: `${p}.post_attention_layernorm.weight`, shape: [o.hidden], init: 'norm' },
      { name: `${p}.mlp.gate_proj.weight`, shape: [o.intermediate, o.hidden], init: 'normal' },
      { name: `${p}.mlp.up_proj.weight`, shape: [o.intermediate, o.hidden], init: 'normal' },
      { name: `${p}.mlp.down_proj.weight`, shape: [o.hidden, o.intermediate], init: 'normal' },
    );
    if (qwen) {
      specs.push(
        { name: `${p}.self_attn.q_proj.bias`, shape: [o.hidden], init: 'bias' },
        { name: `${p}.self_attn.k_proj.bias`, shape: [kv], init: 'bias' },
        { name: `${p}.self_attn.v_proj.bias`, shape: [kv], init: 'bias' },
      );
    }
  }
  specs.push({ name: 'model.norm.weight', shape: [o.hidden], init: 'norm' });
  if (!o.tieEmbeddings) specs.push({ name: 'lm_head.weight', shape: [o.vocab, o.hidden], init: 'normal' });
  const config = {
    architectures: [qwen ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: o.arch,
    hidden_size: o.hidden,
    intermediate_size: o.intermediate,
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    head_dim: headDim,
    vocab_size: o.vocab,
    max_position_embeddings: o.maxPositions,
    rope_theta: 10000.0,
    rope_scaling: null,
    rms_norm_eps: 1e-6,
    hidden_act: 'silu',
    tie_word_embeddings: o.tieEmbeddings,
    attention_bias: false,
    initializer_range: initStd,
    torch_dtype: torchDtype(o.dtype),
  };
  return { specs, config };
}

function gpt2Tensors(o: Required<TinyModelOptions>): { specs: TensorSpec[]; config: object } {
  const h = o.hidden;
  // GPT-2 stores Conv1D weights as [in, out]; save_pretrained of GPT2LMHeadModel prefixes 'transformer.'.
  const specs: TensorSpec[] = [
    { name: 'transformer.wte.weight', shape: [o.vocab, h], init: 'normal' },
    { name: 'transformer.wpe.weight', shape: [o.maxPositions, h], init: 'normal' },
  ];
  for (let i = 0; i < o.layers; i++) {
    const p = `transformer.h.${i}`;
    specs.push(
      { name: `${p}.ln_1.weight`, shape: [h], init: 'norm' },
      { name: `${p}.ln_1.bias`, shape: [h], init: 'bias' },
      { name: `${p}.attn.c_attn.weight`, shape: [h, 3 * h], init: 'normal' },
      { name: `${p}.attn.c_attn.bias`, shape: [3 * h], init: 'bias' },
      { name: `${p}.attn.c_proj.weight`, shape: [h, h], init: 'normal' },
      { name: `${p}.attn.c_proj.bias`, shape: [h], init: 'bias' },
      { name: `${p}.ln_2.weight`, shape: [h], init: 'norm' },
      { name: `${p}.ln_2.bias`, shape: [h], init: 'bias' },
      { name: `${p}.mlp.c_fc.weight`, shape: [h, o.intermediate], init: 'normal' },
      { name: `${p}.mlp.c_fc.bias`, shape: [o.intermediate], init: 'bias' },
      { name: `${p}.mlp.c_proj.weight`, shape: [o.intermediate, h], init: 'normal' },
      { name: `${p}.mlp.c_proj.bias`, shape: [h], init: 'bias' },
    );
  }
  specs.push({ name: 'transformer.ln_f.weight', shape: [h], init: 'norm' }, { name: 'transformer.ln_f.bias', shape: [h], init: 'bias' });
  const config = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: h,
    n_layer: o.layers,
    n_head: o.heads,
    n_inner: o.intermediate,
    n_positions: o.maxPositions,
    n_ctx: o.maxPositions,
    vocab_size: o.vocab,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    tie_word_embeddings: true,
    initializer_range: initStd,
    torch_dtype: torchDtype(o.dtype),
  };
  return { specs, config };
}

function torchDtype(d: 'F32' | 'F16' | 'BF16'): string {
  return d === 'F32' ? 'float32' : d === 'F16' ? 'float16' : 'bfloat16';
}

/** FNV-1a of the tensor name, so each tensor's values depend only on (seed, name), not on write order or sharding. */
function nameSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function tensorValues(spec: TensorSpec, seed: number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(nameSeed(seed, spec.name));
  // Norm gains near 1 and small non-zero biases make reference tests sensitive to every parameter.
  if (spec.init === 'norm') return rng.normalArray(n, 0.1, 1);
  if (spec.init === 'bias') return rng.normalArray(n, initStd);
  return rng.normalArray(n, initStd);
}

/** Fills defaults; also used by callers that need the exact shapes without writing anything. */
export function resolveTinyOptions(opts: Partial<TinyModelOptions>): Required<TinyModelOptions> {
  const arch = opts.arch ?? tinyDefaults.arch;
  const hidden = opts.hidden ?? tinyDefaults.hidden;
  const heads = opts.heads ?? tinyDefaults.heads;
  if (hidden % heads !== 0) throw new Error(`hidden ${hidden} must be a multiple of heads ${heads}`);
  const kvHeads = arch === 'gpt2' ? heads : (opts.kvHeads ?? heads);
  if (heads % kvHeads !== 0) throw new Error(`heads ${heads} must be a multiple of kvHeads ${kvHeads}`);
  const vocab = opts.vocab ?? tinyDefaults.vocab;
  if (vocab < 259) throw new Error(`vocab ${vocab} is smaller than the 259 tokens of the byte-level tokenizer`);
  return {
    arch,
    hidden,
    layers: opts.layers ?? tinyDefaults.layers,
    heads,
    kvHeads,
    intermediate: opts.intermediate ?? (arch === 'gpt2' ? 4 * hidden : Math.ceil((hidden * 8) / 3 / 8) * 8),
    vocab,
    maxPositions: opts.maxPositions ?? (arch === 'gpt2' ? 256 : 2048),
    seed: opts.seed ?? tinyDefaults.seed,
    dtype: opts.dtype ?? 'F32',
    maxShardBytes: opts.maxShardBytes ?? Infinity,
    tieEmbeddings: opts.tieEmbeddings ?? arch !== 'llama',
  };
}

/** The tensors (names, shapes) and config.json of a tiny model, without generating values. */
export function tinyModelLayout(opts: Partial<TinyModelOptions>): { specs: TensorSpec[]; config: object } {
  const o = resolveTinyOptions(opts);
  return o.arch === 'gpt2' ? gpt2Tensors(o) : llamaTensors(o);
}

function toWrite(spec: TensorSpec, o: Required<TinyModelOptions>): TensorToWrite {
  const dtype: Dtype = o.dtype;
  return { name: spec.name, dtype, shape: spec.shape, data: async () => float32ToBytes(tensorValues(spec, o.seed), o.dtype) };
}

/**
 * Writes a complete Hugging Face style model folder with deterministic random weights: config.json,
 * model.safetensors (or shards + index), tokenizer.json, tokenizer_config.json, generation_config.json.
 * The folder appears atomically; an existing folder is refused.
 */
export async function makeTinyModel(outDir: string, opts: Partial<TinyModelOptions> = {}): Promise<void> {
  const o = resolveTinyOptions(opts);
  const { specs, config } = tinyModelLayout(o);
  const bytesPer = o.dtype === 'F32' ? 4 : 2;
  const size = (s: TensorSpec) => s.shape.reduce((a, b) => a * b, 1) * bytesPer;
  // Greedy sharding in name order, as transformers' save_pretrained does with max_shard_size.
  const shards: TensorSpec[][] = [[]];
  let current = 0;
  for (const s of [...specs].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (current > 0 && current + size(s) > o.maxShardBytes) {
      shards.push([]);
      current = 0;
    }
    shards[shards.length - 1].push(s);
    current += size(s);
  }
  const { tokenizer, config: tokConfig } = makeByteLevelTokenizer();
  await writeDirAtomic(outDir, async (tmp) => {
    const json = (o: object) => JSON.stringify(o, null, 2) + '\n';
    await fs.writeFile(path.join(tmp, 'config.json'), json(config));
    await fs.writeFile(path.join(tmp, 'tokenizer.json'), json(tokenizer));
    await fs.writeFile(path.join(tmp, 'tokenizer_config.json'), json(tokConfig));
    await fs.writeFile(path.join(tmp, 'generation_config.json'), json({ eos_token_id: 256, pad_token_id: 257, bos_token_id: 258 }));
    if (shards.length === 1) {
      await writeSafetensors(path.join(tmp, 'model.safetensors'), shards[0].map((s) => toWrite(s, o)));
      return;
    }
    const pad = (n: number) => String(n).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let i = 0; i < shards.length; i++) {
      const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
      await writeSafetensors(path.join(tmp, file), shards[i].map((s) => toWrite(s, o)));
      for (const s of shards[i]) {
        weightMap[s.name] = file;
        total += size(s);
      }
    }
    await writeFileAtomic(path.join(tmp, 'model.safetensors.index.json'), json({ metadata: { total_size: total }, weight_map: weightMap }));
  });
}
