// UUID evaluation: greedy generation of each value from its key, scored by character-level accuracy (the paper's
// metric). All UUID prompts tokenize to the same length, so the prompts are decoded together as one batch: one
// forward pass per generated token for the whole batch instead of one per pair.
import * as tf from '@tensorflow/tfjs';
import type { TokenizerLike } from './data';
import { scoreUuid, uuidPrompt, type UuidPair, type UuidScore } from './uuid';

/** The model surface evaluation needs (CausalLM provides it). */
export interface LogitsModel {
  /** ids [B, T] int32 -> logits [B, T, V]. */
  logits(ids: tf.Tensor2D): tf.Tensor3D;
}

export interface Decoder extends TokenizerLike {
  decode(ids: number[]): string;
}

export interface UuidEval extends UuidScore {
  /** The first few (key, expected, predicted) triples, for a human to look at. */
  samples: { key: string; expected: string; predicted: string }[];
}

/** Greedy-decodes `maxNew` tokens for equal-length prompts; returns the new tokens per row (stopping at EOS). */
export async function greedyBatch(model: LogitsModel, prompts: number[][], maxNew: number, eosId: number | null | undefined): Promise<number[][]> {
  const B = prompts.length;
  const T0 = prompts[0].length;
  if (prompts.some((p) => p.length !== T0)) throw new Error('greedyBatch: prompts must have equal length');
  const rows = prompts.map((p) => [...p]);
  const done = new Array<boolean>(B).fill(false);
  for (let k = 0; k < maxNew && done.some((d) => !d); k++) {
    const T = T0 + k;
    const next = tf.tidy(() => {
      const ids = tf.tensor2d(rows.flat(), [B, T], 'int32');
      // [B, T, V] -> last position [B, V] -> argmax [B]
      const last = model.logits(ids).slice([0, T - 1, 0], [B, 1, -1]).squeeze([1]) as tf.Tensor2D;
      return last.argMax(-1);
    });
    const ids = Array.from(await next.data());
    next.dispose();
    ids.forEach((id, b) => {
      rows[b].push(id);
      if (id === eosId) done[b] = true;
    });
  }
  return rows.map((r) => {
    const gen = r.slice(T0);
    const stop = eosId == null ? -1 : gen.indexOf(eosId);
    return stop >= 0 ? gen.slice(0, stop) : gen;
  });
}

/** Accuracy of generating each pair's value from its key, in batches of `batch` pairs. */
export async function evaluateUuid(model: LogitsModel, tok: Decoder, pairs: UuidPair[], batch = 64): Promise<UuidEval> {
  const predictions: string[] = [];
  for (let i = 0; i < pairs.length; i += batch) {
    const chunk = pairs.slice(i, i + batch);
    const prompts = chunk.map((p) => [...(tok.bosId != null ? [tok.bosId] : []), ...tok.encode(uuidPrompt(p.key))]);
    // The value's own token count bounds the generation: scoring ignores anything after it, EOS included.
    const maxNew = Math.max(...chunk.map((p) => tok.encode(p.value).length));
    const out = await greedyBatch(model, prompts, maxNew, tok.eosId);
    predictions.push(...out.map((ids) => tok.decode(ids)));
  }
  const score = scoreUuid(pairs, predictions);
  const samples = pairs.slice(0, 3).map((p, i) => ({ key: p.key, expected: p.value, predicted: predictions[i] }));
  return { ...score, samples };
}
