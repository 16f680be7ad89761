// Glue between a TrainConfig and the model/adapters packages: the adapter spec the model is built with, the PEFT
// adapter_config.json written next to the weights, and the data pipeline.
import * as tf from '@tensorflow/tfjs';
import { defaultAdapterConfig, type AdapterConfig } from '../adapters';
import type { ModelConfig } from '../model/config';
import type { AdapterSpec } from '../model/transformer';
import type { TrainConfig } from '../protocol/trainer';
import { DataError, loadRecords, tokenizeRecords, type TokenizerLike } from './data';
import { BatchSampler } from './sampler';

/** What the model builds adapters from (also the init seed, so equal seeds give equal initial adapters). */
export function adapterSpecFor(c: TrainConfig): AdapterSpec {
  return { method: c.method, r: c.r, alpha: c.alpha, moraType: c.moraType, targets: c.targets, seed: c.seed };
}

/** The PEFT config saved with every checkpoint; MoRA adds use_mora / mora_type as the peft-mora fork does. */
export function adapterConfigFor(c: TrainConfig, model: ModelConfig): AdapterConfig {
  return defaultAdapterConfig({
    base_model_name_or_path: c.model,
    r: c.r,
    lora_alpha: c.method === 'mora' ? c.r : c.alpha,
    target_modules: c.targets,
    fan_in_fan_out: model.arch === 'gpt2',
    use_mora: c.method === 'mora',
    mora_type: c.moraType,
  });
}

/** Total number of trainable scalars. */
export function countParams(vars: tf.Variable[]): number {
  return vars.reduce((s, v) => s + v.size, 0);
}

/** Loads and tokenizes the data; returns the sampler and the lines worth telling the user about. */
export async function prepareData(c: TrainConfig, tok: TokenizerLike): Promise<{ sampler: BatchSampler; notes: string[] }> {
  const parsed = await loadRecords(c.data, { skipBadLines: c.skipBadLines });
  const { examples, stats } = tokenizeRecords(parsed.records, tok, c.seq);
  const notes: string[] = [`data: ${parsed.records.length} records → ${examples.length} sequences from ${c.data}`];
  if (parsed.skipped) notes.push(`skipped ${parsed.skipped} bad lines (first: ${parsed.skippedReasons.join('; ')})`);
  if (stats.truncated) notes.push(`${stats.truncated} records were longer than --seq ${c.seq} and were truncated`);
  if (stats.dropped) notes.push(`${stats.dropped} records had no completion token within --seq ${c.seq} and were dropped`);
  if (examples.length === 0) throw new DataError('empty', `no training sequences left from ${c.data} at --seq ${c.seq}: every record's completion lies beyond the first ${c.seq} tokens`);
  const pad = tok.padId ?? tok.eosId ?? 0;
  return { sampler: new BatchSampler(examples, c.batch, c.seed, pad, c.seq), notes };
}
