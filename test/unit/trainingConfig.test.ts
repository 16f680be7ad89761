import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  expandOutPattern,
  moraJsonFields,
  moraJsonProblems,
  parseMoraJson,
  relativeToWorkspace,
  resolveTrainConfig,
  serializeMoraJson,
  timeStamp,
  TrainingConfigError,
  trainDefaults,
} from '../../src/model/trainingConfig';

const schema = JSON.parse(readFileSync(new URL('../../schemas/mora.schema.json', import.meta.url), 'utf8'));

test('a hand-written mora.json parses; every bad field is reported by name', () => {
  const ok = parseMoraJson('{"model":"./tiny","data":"uuid:32","method":"mora","moraType":1,"r":16,"targets":["q_proj","v_proj"],"lr":0.001}');
  assert.equal(ok.moraType, 1);
  assert.deepEqual(ok.targets, ['q_proj', 'v_proj']);

  assert.throws(() => parseMoraJson('{"r": 8,'), (e: unknown) => e instanceof TrainingConfigError && e.kind === 'syntax');
  const problems = moraJsonProblems({ method: 'dora', moraType: 3, r: 0, lr: 0, steps: 1.5, targets: [], backend: 'tpu', colour: 'red', skipBadLines: 'yes' });
  assert.deepEqual(problems.map((p) => p.split(':')[0]).sort(), ['backend', 'colour', 'lr', 'method', 'moraType', 'r', 'skipBadLines', 'steps', 'targets']);
  assert.match(problems.find((p) => p.startsWith('colour'))!, /unknown setting/);
  assert.deepEqual(moraJsonProblems([]), ['mora.json must contain a JSON object']);
  assert.deepEqual(moraJsonProblems({ targets: '(' }), ['targets: not a valid regular expression']);
  assert.deepEqual(moraJsonProblems({ targets: 'all-linear', r: 4096 }), []);
  try {
    parseMoraJson('{"r": -1, "seq": 1}');
    assert.fail('expected a throw');
  } catch (e) {
    assert.ok(e instanceof TrainingConfigError);
    assert.equal(e.kind, 'invalid');
    assert.equal(e.name, 'TrainingConfigError');
    assert.deepEqual(e.problems, ['r: must be >= 1, got -1', 'seq: must be >= 2, got 1']);
  }
});

test('the JSON schema and the validator describe the same fields, enums and bounds', () => {
  assert.equal(schema.additionalProperties, false);
  assert.deepEqual(Object.keys(schema.properties).sort(), Object.keys(moraJsonFields).sort());
  for (const [key, spec] of Object.entries(moraJsonFields)) {
    const s = schema.properties[key];
    if (spec.type === 'enum') assert.deepEqual(s.enum, [...spec.values], key);
    else if (spec.type === 'targets') assert.ok(Array.isArray(s.oneOf), key);
    else if (spec.type === 'number' || spec.type === 'integer') {
      assert.equal(s.type, spec.type, key);
      if (spec.exclusiveMin) assert.equal(s.exclusiveMinimum, spec.min, key);
      else assert.equal(s.minimum, spec.min, key);
      assert.equal(s.maximum, spec.max, key);
    } else assert.equal(s.type, spec.type, key);
  }
});

test('serialize keeps a stable key order and round-trips', () => {
  const text = serializeMoraJson({ targets: ['q_proj'], r: 8, model: 'tiny', method: 'lora' });
  assert.equal(text, '{\n  "model": "tiny",\n  "method": "lora",\n  "r": 8,\n  "targets": [\n    "q_proj"\n  ]\n}\n');
  assert.deepEqual(parseMoraJson(text), { model: 'tiny', method: 'lora', r: 8, targets: ['q_proj'] });
  // A hand-added unknown key is kept (last), not silently dropped.
  const kept = serializeMoraJson({ note: 'mine', r: 4 } as never);
  assert.equal(kept, '{\n  "r": 4,\n  "note": "mine"\n}\n');
});

test('resolveTrainConfig layers defaults ← settings ← mora.json ← overrides and resolves paths', () => {
  const ws = path.resolve('/ws');
  const cfg = resolveTrainConfig({ model: 'models/tiny', data: 'uuid:64', r: 16, steps: 10 }, { steps: 3, out: 'runs/a', lr: undefined }, ws, { method: 'lora', r: 4 });
  assert.equal(cfg.model, path.join(ws, 'models/tiny'));
  assert.equal(cfg.data, 'uuid:64');
  assert.equal(cfg.out, path.join(ws, 'runs/a'));
  assert.equal(cfg.r, 16); // mora.json beats the settings
  assert.equal(cfg.method, 'lora'); // settings beat built-in defaults
  assert.equal(cfg.steps, 3); // explicit overrides win
  assert.equal(cfg.lr, trainDefaults.lr); // an undefined override does not erase a value
  assert.equal(cfg.resume, undefined);
  assert.equal(resolveTrainConfig({ data: 'd.jsonl' }, { model: '/abs/m', out: '/o' }, ws).data, path.join(ws, 'd.jsonl'));

  assert.throws(() => resolveTrainConfig({ model: 'm' }, {}, ws), (e: unknown) => e instanceof TrainingConfigError && e.kind === 'missing' && /data, out/.test(e.message));
  assert.throws(() => resolveTrainConfig({ model: 'm', data: 'd', out: 'o' }, { r: 0 }, ws), (e: unknown) => e instanceof TrainingConfigError && e.kind === 'invalid');
});

test('output folder pattern and workspace-relative paths', () => {
  const date = timeStamp(new Date(2025, 0, 2, 3, 4, 5));
  assert.equal(date, '20250102-030405');
  const out = expandOutPattern('${workspaceFolder}/.mora/runs/${model}-${method}-r${r}-${date}', { workspaceFolder: '/ws', model: 'tiny', method: 'mora', r: 8, date });
  assert.equal(out, '/ws/.mora/runs/tiny-mora-r8-20250102-030405');
  assert.throws(() => expandOutPattern('${home}/x', { workspaceFolder: '/ws', model: 'm', method: 'mora', r: 8, date }), TrainingConfigError);
  const ws = path.resolve('/ws');
  assert.equal(relativeToWorkspace(path.join(ws, 'models', 'tiny'), ws), 'models/tiny');
  assert.equal(relativeToWorkspace(path.resolve('/elsewhere/m'), ws), path.resolve('/elsewhere/m'));
});
