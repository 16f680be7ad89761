// Loads a base model with a trained adapter folder attached (for evaluation): the adapter's config decides the
// method, rank and targets, so the rebuilt adapter layers have exactly the saved shapes.
import { readAdapter, type AdapterConfig } from '../adapters';
import { CausalLM, type AdapterSpec } from '../model/transformer';

export function adapterSpecFromConfig(cfg: AdapterConfig): AdapterSpec {
  return {
    method: cfg.use_mora ? 'mora' : 'lora',
    r: cfg.r,
    alpha: cfg.lora_alpha,
    moraType: cfg.mora_type,
    targets: cfg.target_modules,
    seed: 0,
  };
}

/** The base model alone when `adapterDir` is undefined, else base + adapter weights. */
export async function loadWithAdapter(modelDir: string, adapterDir?: string): Promise<CausalLM> {
  if (!adapterDir) return CausalLM.load(modelDir, {});
  const adapter = await readAdapter(adapterDir);
  const model = await CausalLM.load(modelDir, { adapter: adapterSpecFromConfig(adapter.config) });
  model.loadAdapterWeights([...adapter.modules.values()]);
  return model;
}
