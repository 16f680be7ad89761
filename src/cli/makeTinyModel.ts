import type { Command } from './command';
import { numberFlag, parseFlags, requireFlag, UsageError } from './command';
import { makeTinyModel, resolveTinyOptions, tinyDefaults, tinyModelLayout } from '../model/tinyModel';

const usage = `usage: mora make-tiny-model --out DIR [flags]

Writes a Hugging Face style model folder (config.json, model.safetensors, tokenizer.json) with deterministic
random weights, for tests, demos and benchmarks. Nothing is downloaded.

flags:
  --out DIR            output folder (must not exist)
  --arch NAME          llama | qwen2 | gpt2 (default ${tinyDefaults.arch})
  --hidden N           hidden size (default ${tinyDefaults.hidden})
  --layers N           transformer blocks (default ${tinyDefaults.layers})
  --heads N            attention heads (default ${tinyDefaults.heads})
  --kv-heads N         key/value heads for grouped-query attention (default: heads)
  --intermediate N     MLP width (default: 4·hidden for gpt2, ~8/3·hidden for llama/qwen2)
  --vocab N            vocabulary rows, >= 259 (default ${tinyDefaults.vocab})
  --seed S             random seed (default ${tinyDefaults.seed})
  --dtype D            F32 | F16 | BF16 (default F32)
  --max-shard-mb N     split weights into shards of at most N MB
`;

export const makeTinyModelCommand: Command = {
  name: 'make-tiny-model',
  summary: 'generate a random-init tiny model folder (llama, qwen2 or gpt2) with a tokenizer',
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      out: { type: 'string' },
      arch: { type: 'string' },
      hidden: { type: 'string' },
      layers: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      intermediate: { type: 'string' },
      vocab: { type: 'string' },
      seed: { type: 'string' },
      dtype: { type: 'string' },
      'max-shard-mb': { type: 'string' },
    });
    const out = requireFlag(values, 'out');
    const arch = values.arch ?? tinyDefaults.arch;
    if (arch !== 'llama' && arch !== 'qwen2' && arch !== 'gpt2') throw new UsageError(`--arch must be llama, qwen2 or gpt2, got '${arch}'`);
    const dtype = (values.dtype ?? 'F32').toUpperCase();
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') throw new UsageError(`--dtype must be F32, F16 or BF16, got '${values.dtype}'`);
    const int = { integer: true, min: 1 };
    const intOrUndef = (name: string) => (values[name as keyof typeof values] === undefined ? undefined : numberFlag(values, name, 0, int));
    const shardMb = values['max-shard-mb'] === undefined ? undefined : numberFlag(values, 'max-shard-mb', 0, { min: 0.001 });
    let opts;
    try {
      opts = resolveTinyOptions({
        arch,
        hidden: numberFlag(values, 'hidden', tinyDefaults.hidden, int),
        layers: numberFlag(values, 'layers', tinyDefaults.layers, int),
        heads: numberFlag(values, 'heads', tinyDefaults.heads, int),
        kvHeads: intOrUndef('kv-heads'),
        intermediate: intOrUndef('intermediate'),
        vocab: numberFlag(values, 'vocab', tinyDefaults.vocab, int),
        seed: numberFlag(values, 'seed', tinyDefaults.seed, { integer: true, min: 0 }),
        dtype,
        maxShardBytes: shardMb === undefined ? undefined : shardMb * 1e6,
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    await makeTinyModel(out, opts);
    const params = tinyModelLayout(opts).specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    process.stdout.write(`wrote ${opts.arch} model to ${out}: ${opts.layers} layers, hidden ${opts.hidden}, ${params.toLocaleString('en-US')} parameters (${opts.dtype})\n`);
  },
};
