// The LLaMA-2-7B shapes and generated MoRA matrices shared by the spectrum benchmarks, so that spectrumBench.ts (σ
// alone) and spectrumCliBench.ts (`mora spectrum` end to end) measure the same adapter.
import { mulberry, randn } from '../src/spectrum/random';

export const LLAMA7B_LAYERS = 32;

/** The projections of one layer as [module path below the layer, in, out]. */
export const LLAMA7B_MODULES: [string, number, number][] = [
  ['self_attn.q_proj', 4096, 4096], ['self_attn.k_proj', 4096, 4096], ['self_attn.v_proj', 4096, 4096], ['self_attn.o_proj', 4096, 4096],
  ['mlp.gate_proj', 4096, 11008], ['mlp.up_proj', 4096, 11008], ['mlp.down_proj', 11008, 4096],
];

/** A random r̂×r̂ MoRA M (entries 0.02·N(0, 1)); module k of the model (layer·7 + index) uses seed layer·16 + k. */
export function randomM(rHat: number, seed: number): Float32Array {
  const rnd = mulberry(seed);
  return Float32Array.from({ length: rHat * rHat }, () => 0.02 * randn(rnd));
}
