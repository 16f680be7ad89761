// The UUID memorization task of the MoRA paper (Sec. 4.1): N random key→value UUID pairs; the model must produce the
// value UUID when given the key. Nothing in pre-training can help, so it measures how much new knowledge an
// adapter can store. Pairs come from a seeded generator, so `uuid:N` with the same seed is the same data set
// everywhere (training, eval-uuid, the demo, the bench).
import { Rng } from './rng';
import type { TextRecord } from './data';

export interface UuidPair {
  key: string;
  value: string;
}

/** Default seed of the task's data (independent of the training seed, which drives init and data order). */
export const defaultUuidSeed = 42;

/** Parses `uuid:N` (N ≥ 1); returns undefined for anything else, so callers can fall back to a file path. */
export function parseUuidSpec(spec: string): number | undefined {
  const m = /^uuid:(\d+)$/.exec(spec.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return n >= 1 ? n : undefined;
}

const hex = '0123456789abcdef';

/** A version-4-shaped UUID (8-4-4-4-12 lowercase hex, version nibble 4, variant 8–b) from the generator. */
export function randomUuid(rng: Rng): string {
  let s = '';
  for (let i = 0; i < 32; i++) {
    let d = rng.int(16);
    if (i === 12) d = 4;
    if (i === 16) d = 8 + (d & 3);
    s += hex[d];
    if (i === 7 || i === 11 || i === 15 || i === 19) s += '-';
  }
  return s;
}

/** N distinct key→value pairs, identical for identical (n, seed). */
export function makeUuidPairs(n: number, seed = defaultUuidSeed): UuidPair[] {
  const rng = new Rng(seed);
  const seen = new Set<string>();
  const pairs: UuidPair[] = [];
  while (pairs.length < n) {
    const key = randomUuid(rng);
    const value = randomUuid(rng);
    if (seen.has(key)) continue;
    seen.add(key);
    pairs.push({ key, value });
  }
  return pairs;
}

/** The prompt the model sees at training and at evaluation time; the loss covers only the value after it. */
export function uuidPrompt(key: string): string {
  return `${key}:`;
}

/** Training records: prompt = key, completion = value (an EOS is appended by the tokenization step). */
export function uuidRecords(pairs: UuidPair[]): TextRecord[] {
  return pairs.map((p) => ({ prompt: uuidPrompt(p.key), completion: p.value, source: 'uuid' }));
}

/**
 * Character-level accuracy as in the paper: the share of the target's characters that the prediction reproduces at
 * the same position. Missing characters count as wrong; extra characters after the target are ignored.
 */
export function charAccuracy(predicted: string, target: string): number {
  if (target.length === 0) return predicted.length === 0 ? 1 : 0;
  let ok = 0;
  for (let i = 0; i < target.length; i++) if (predicted[i] === target[i]) ok++;
  return ok / target.length;
}

export interface UuidScore {
  /** Mean character-level accuracy over pairs, in [0, 1]. */
  charAccuracy: number;
  /** Share of pairs reproduced exactly. */
  exactMatch: number;
  n: number;
}

/** Scores predictions against the pairs' values (predictions[i] belongs to pairs[i]). */
export function scoreUuid(pairs: UuidPair[], predictions: string[]): UuidScore {
  if (predictions.length !== pairs.length) throw new Error(`scoreUuid: ${predictions.length} predictions for ${pairs.length} pairs`);
  let acc = 0;
  let exact = 0;
  pairs.forEach((p, i) => {
    const pred = predictions[i].trim();
    acc += charAccuracy(pred, p.value);
    if (pred.slice(0, p.value.length) === p.value) exact++;
  });
  const n = pairs.length;
  return { charAccuracy: n ? acc / n : 0, exactMatch: n ? exact / n : 0, n };
}
