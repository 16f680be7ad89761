// `mora eval-uuid`: character-level accuracy of generating each value UUID from its key (the MoRA paper's metric).
import * as path from 'node:path';
import { parseFlags, requireFlag, numberFlag, UsageError, type Command } from './command';
import { backendChoices, type BackendChoice } from '../protocol/trainer';
import { loadTokenizer } from '../model/tokenizer';
import { releaseBackend, selectBackend } from '../trainer/backend';
import { evaluateUuid } from '../trainer/evaluate';
import { loadWithAdapter } from '../trainer/loadTrained';
import { defaultUuidSeed, makeUuidPairs, parseUuidSpec } from '../trainer/uuid';

const usage = `usage: mora eval-uuid --model DIR [--adapter DIR] [--data uuid:N] [--seed N] [--backend NAME] [--json]

Greedy-generates the value of each key→value pair of the UUID task and prints the character-level accuracy
(and exact-match rate). Without --adapter the base model is scored (chance is about 1/16 per hex digit).

  --data uuid:N     the task trained on (default uuid:100)
  --seed N          seed of the UUID pairs (default ${defaultUuidSeed}, as training uses)
  --limit N         score only the first N pairs
  --backend NAME    ${backendChoices.join(' | ')} (default auto)
  --json            print one JSON object instead of text`;

export const evalUuidCommand: Command = {
  name: 'eval-uuid',
  summary: 'Score an adapter on the UUID memorization task (character-level accuracy)',
  usage,
  async run(argv) {
    const { values: v } = parseFlags(argv, {
      model: { type: 'string' }, adapter: { type: 'string' }, data: { type: 'string' }, seed: { type: 'string' },
      limit: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' },
    });
    const model = path.resolve(requireFlag(v, 'model'));
    const n = parseUuidSpec(v.data ?? 'uuid:100');
    if (n === undefined) throw new UsageError(`--data must be uuid:N, got '${v.data}'`);
    const seed = numberFlag(v, 'seed', defaultUuidSeed, { integer: true, min: 0 });
    const limit = numberFlag(v, 'limit', n, { integer: true, min: 1 });
    const backend = (v.backend ?? 'auto') as BackendChoice;
    if (!backendChoices.includes(backend)) throw new UsageError(`--backend must be one of ${backendChoices.join(', ')}`);
    const chosen = await selectBackend(backend);
    const tok = await loadTokenizer(model);
    const lm = await loadWithAdapter(model, v.adapter ? path.resolve(v.adapter) : undefined);
    try {
      const pairs = makeUuidPairs(n, seed).slice(0, limit);
      const r = await evaluateUuid(lm, tok, pairs);
      if (v.json) {
        process.stdout.write(JSON.stringify({ ...r, backend: chosen.backend, adapter: v.adapter ?? null }) + '\n');
      } else {
        process.stdout.write(`pairs: ${r.n}  backend: ${chosen.backend}\n`);
        process.stdout.write(`char accuracy: ${(100 * r.charAccuracy).toFixed(1)}%  exact match: ${(100 * r.exactMatch).toFixed(1)}%\n`);
        for (const s of r.samples) process.stdout.write(`  ${s.key} → ${s.predicted}  (expected ${s.expected})\n`);
      }
    } finally {
      lm.dispose();
      releaseBackend();
    }
  },
};
