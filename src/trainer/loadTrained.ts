// Loads a base model with a trained adapter folder attached (for evaluation): the adapter's config decides the
// method, rank and targets, so the rebuilt adapter layers have exactly the saved shapes.
import { loraScaling, readAdapter, type AdapterConfig } from '../adapters';
import { CausalLM, TransformerError, type AdapterSpec } from '../model/transformer';

/**
 * The adapter layers a saved config describes. The layers apply one rank and one scaling to every module and have
 * no DoRA magnitude, so configs needing more are refused rather than evaluated as a different model.
 */
export function adapterSpecFromConfig(cfg: AdapterConfig): AdapterSpec {
  const unsupported = [
    cfg.use_dora ? 'use_dora' : '',
    Object.keys(cfg.rank_pattern).length ? 'rank_pattern' : '',
    Object.keys(cfg.alpha_pattern).length ? 'alpha_pattern' : '',
  ].filter(Boolean);
  if (unsupported.length) {
    throw new TransformerError('AdapterMismatch', `adapter_config.json uses ${unsupported.join(', ')}, which the trainer's adapter layers do not implement`);
  }
  return {
    method: cfg.use_mora ? 'mora' : 'lora',
    r: cfg.r,
    // LoraLayer scales by alpha / r; with rsLoRA PEFT scales by lora_alpha / √r, so pass the alpha giving that.
    alpha: cfg.use_mora ? cfg.lora_alpha : loraScaling(cfg.lora_alpha, cfg.r, cfg.use_rslora) * cfg.r,
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
