// Training data: JSONL (`text` | `prompt`+`completion` | `instruction`+`input`+`output`), plain .txt, or the built-in
// UUID task. Records become token sequences whose loss covers only the completion part; labels come out already
// shifted (labels[t] is the target for position t), with -100 marking positions that carry no loss.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { makeUuidPairs, parseUuidSpec, uuidRecords, defaultUuidSeed } from './uuid';
import { KindError } from '../util/kindError';

/** One training record. Loss is computed on `completion` only; `prompt` is context. */
export interface TextRecord {
  prompt: string;
  completion: string;
  /** 'file:line' for JSONL, the file for .txt, 'uuid' for the built-in task; used in messages. */
  source: string;
  /** Plain text may be cut into several windows instead of being truncated. */
  chunkable?: boolean;
}

export type DataErrorKind = 'bad-line' | 'empty' | 'unsupported-format' | 'not-found';

export class DataError extends KindError<DataErrorKind> {
  override name = 'DataError';
}

export interface ParsedData {
  records: TextRecord[];
  /** Lines that were skipped because of --skip-bad-lines, with the first few reasons. */
  skipped: number;
  skippedReasons: string[];
}

/** Alpaca-style prompt for instruction data; the output is the completion. */
export function instructionPrompt(instruction: string, input: string): string {
  return input
    ? `### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`
    : `### Instruction:\n${instruction}\n\n### Response:\n`;
}

/** Turns one parsed JSON value into a record, or explains in one phrase why it cannot. */
function recordFromJson(v: unknown, source: string): TextRecord | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'expected a JSON object';
  const o = v as Record<string, unknown>;
  const str = (k: string) => typeof o[k] === 'string';
  if ('text' in o) return str('text') ? { prompt: '', completion: o.text as string, source, chunkable: true } : '"text" must be a string';
  if ('prompt' in o || 'completion' in o) {
    if (!str('prompt') || !str('completion')) return '"prompt" and "completion" must both be strings';
    return { prompt: o.prompt as string, completion: o.completion as string, source };
  }
  if ('instruction' in o || 'output' in o) {
    if (!str('instruction') || !str('output')) return '"instruction" and "output" must both be strings';
    if (o.input !== undefined && !str('input')) return '"input" must be a string when present';
    return { prompt: instructionPrompt(o.instruction as string, (o.input as string) ?? ''), completion: o.output as string, source };
  }
  return 'no "text", "prompt"/"completion" or "instruction"/"output" fields';
}

/** Parses JSONL text. Blank lines are ignored; a bad line throws DataError('bad-line', 'file:line: …') unless skipping. */
export function parseJsonl(text: string, file: string, skipBadLines: boolean): ParsedData {
  const out: ParsedData = { records: [], skipped: 0, skippedReasons: [] };
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let rec: TextRecord | string;
    try {
      rec = recordFromJson(JSON.parse(line), where);
    } catch (err) {
      rec = `invalid JSON (${(err as Error).message})`;
    }
    if (typeof rec !== 'string') {
      out.records.push(rec);
      return;
    }
    if (!skipBadLines) throw new DataError('bad-line', `${where}: ${rec} (use --skip-bad-lines to skip such lines)`);
    out.skipped++;
    if (out.skippedReasons.length < 5) out.skippedReasons.push(`${where}: ${rec}`);
  });
  return out;
}

/** Reads `uuid:N`, a .jsonl/.json file or a .txt file into records. */
export async function loadRecords(spec: string, opts: { skipBadLines: boolean; uuidSeed?: number }): Promise<ParsedData> {
  const n = parseUuidSpec(spec);
  if (n !== undefined) return { records: uuidRecords(makeUuidPairs(n, opts.uuidSeed ?? defaultUuidSeed)), skipped: 0, skippedReasons: [] };
  if (/^uuid:/i.test(spec.trim())) throw new DataError('unsupported-format', `'${spec}': the UUID task needs a positive pair count, e.g. uuid:32`);
  const ext = path.extname(spec).toLowerCase();
  let text: string;
  try {
    text = await fs.readFile(spec, 'utf8');
  } catch (err) {
    throw new DataError('not-found', `cannot read data file ${spec}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: ParsedData;
  if (ext === '.jsonl' || ext === '.json') parsed = parseJsonl(text, spec, opts.skipBadLines);
  else if (ext === '.txt' || ext === '.md' || ext === '') parsed = { records: text.trim() ? [{ prompt: '', completion: text, source: spec, chunkable: true }] : [], skipped: 0, skippedReasons: [] };
  else throw new DataError('unsupported-format', `${spec}: expected uuid:N, a .jsonl file or a .txt file`);
  if (parsed.records.length === 0) throw new DataError('empty', `${spec}: no training records`);
  return parsed;
}

/** The tokenizer surface the trainer needs (src/model/tokenizer.ts provides it). */
export interface TokenizerLike {
  encode(text: string): number[];
  eosId: number | null | undefined;
  bosId: number | null | undefined;
  padId: number | null | undefined;
}

/** A tokenized example: ids and shifted labels of equal length (≤ seq). */
export interface Example {
  ids: number[];
  labels: number[];
}

export const IGNORE = -100;

/** Builds input/label pairs from full token lists and a per-token "carries loss" mask. */
function windowed(tokens: number[], lossMask: boolean[], seq: number, chunk: boolean): Example[] {
  const out: Example[] = [];
  // A sequence of L+1 tokens gives L positions: ids = tokens[0..L-1], labels[t] = tokens[t+1].
  const step = chunk ? seq : Number.POSITIVE_INFINITY;
  for (let start = 0; start + 1 < tokens.length; start += step) {
    const end = Math.min(tokens.length, start + seq + 1);
    const ids = tokens.slice(start, end - 1);
    const labels = ids.map((_, t) => (lossMask[start + t + 1] ? tokens[start + t + 1] : IGNORE));
    if (labels.some((l) => l !== IGNORE)) out.push({ ids, labels });
    if (!chunk) break;
  }
  return out;
}

export interface TokenizeStats {
  /** Records whose completion did not fit in seq and was cut. */
  truncated: number;
  /** Records that ended up with no loss-carrying token (e.g. a prompt longer than seq). */
  dropped: number;
}

/**
 * Tokenizes records: [bos] prompt completion [eos]. Prompt and completion are encoded separately so the prompt's
 * tokens are exactly those an evaluation prompt produces.
 */
export function tokenizeRecords(records: TextRecord[], tok: TokenizerLike, seq: number): { examples: Example[]; stats: TokenizeStats } {
  const examples: Example[] = [];
  const stats: TokenizeStats = { truncated: 0, dropped: 0 };
  for (const r of records) {
    const head = tok.bosId != null ? [tok.bosId] : [];
    const p = r.prompt ? tok.encode(r.prompt) : [];
    const c = tok.encode(r.completion);
    const tail = tok.eosId != null ? [tok.eosId] : [];
    const tokens = [...head, ...p, ...c, ...tail];
    const mask = tokens.map((_, i) => i >= head.length + p.length);
    if (!r.chunkable && tokens.length > seq + 1) stats.truncated++;
    const ex = windowed(tokens, mask, seq, !!r.chunkable);
    if (ex.length === 0) stats.dropped++;
    examples.push(...ex);
  }
  return { examples, stats };
}
