import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { KindError } from '../util/kindError';

/** What the trainer needs from a tokenizer; backed by @huggingface/tokenizers reading tokenizer.json. */
export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  vocabSize: number;
  eosId: number;
  bosId: number | null;
  padId: number;
}

export class TokenizerError extends KindError<'TokenizerMissing' | 'TokenizerInvalid'> {
  override name = 'TokenizerError';
}

/** GPT-2's reversible byte → printable-unicode map, which byte-level BPE vocabularies are written in. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const map: string[] = new Array(256);
  bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
  return map;
}

/** Special tokens of the generated tokenizer, placed right after the 256 byte tokens. */
export const tinySpecialTokens = { eos: '<|endoftext|>', pad: '<|pad|>', bos: '<s>' } as const;

/**
 * A byte-level BPE tokenizer.json with no merges: every UTF-8 byte is one token (ids 0–255 in byte order), then
 * eos, pad and bos. Character-level tokens keep tiny models honest on the UUID task (one token per hex digit).
 */
export function makeByteLevelTokenizer(): { tokenizer: object; config: object } {
  const map = bytesToUnicode();
  const vocab: Record<string, number> = {};
  map.forEach((ch, b) => (vocab[ch] = b));
  const specials = [tinySpecialTokens.eos, tinySpecialTokens.pad, tinySpecialTokens.bos];
  specials.forEach((t, i) => (vocab[t] = 256 + i));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, i) => ({
      id: 256 + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: tinySpecialTokens.bos,
    eos_token: tinySpecialTokens.eos,
    pad_token: tinySpecialTokens.pad,
    model_max_length: 2048,
    clean_up_tokenization_spaces: false,
  };
  return { tokenizer, config };
}

async function readJson(file: string): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError('TokenizerInvalid', `${file}: ${(err as Error).message}`);
  }
}

function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** Loads `<dir>/tokenizer.json` (+ tokenizer_config.json when present). */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const json = await readJson(path.join(dir, 'tokenizer.json'));
  if (!json) throw new TokenizerError('TokenizerMissing', `no tokenizer.json in ${dir}`);
  const config = (await readJson(path.join(dir, 'tokenizer_config.json'))) ?? {};
  let tok: HfTokenizer;
  try {
    tok = new HfTokenizer(json, config);
  } catch (err) {
    throw new TokenizerError('TokenizerInvalid', `tokenizer.json in ${dir}: ${(err as Error).message}`);
  }
  const idOf = (v: unknown) => {
    const name = tokenName(v);
    return name === undefined ? undefined : tok.token_to_id(name);
  };
  const model = json.model as { vocab?: Record<string, number> | unknown[] } | undefined;
  const vocabEntries = model?.vocab ? Object.keys(model.vocab).length : 0;
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as { id: number }[]) : [];
  const vocabSize = Math.max(vocabEntries, ...added.map((t) => t.id + 1));
  const eosId = idOf(config.eos_token) ?? tok.token_to_id('</s>') ?? tok.token_to_id('<|endoftext|>');
  if (eosId === undefined) throw new TokenizerError('TokenizerInvalid', `tokenizer in ${dir} has no end-of-sequence token`);
  const bosId = idOf(config.bos_token) ?? null;
  const padId = idOf(config.pad_token) ?? eosId;
  return {
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tok.decode(ids, { skip_special_tokens: true }),
    vocabSize,
    eosId,
    bosId,
    padId,
  };
}
