// The shared inputs can be made inside the extension host's own runtime, and the built CLI runs from it; every
// later suite builds on these.
import * as assert from 'node:assert/strict';
import { readAdapter } from '../../../src/adapters';
import { ModelWeights } from '../../../src/safetensors';
import { suite, test } from './harness';
import { loraAdapter, moraAdapter, runCli, tinyModel, tinyOptions } from './fixtures';

suite('fixtures', () => {
  test('the tiny llama is generated in the workspace with every expected tensor', async () => {
    const w = await ModelWeights.open(await tinyModel());
    try {
      // embed + norm + lm_head + per layer (7 linear + 2 norms).
      assert.equal(w.names().length, 3 + tinyOptions.layers * 9);
      assert.deepEqual(w.info('model.layers.1.mlp.down_proj.weight').shape, [64, 176]);
    } finally {
      await w.close();
    }
  });

  test('the seeded MoRA adapter reads back with 4 modules of M [32, 32]', async () => {
    const a = await readAdapter(await moraAdapter());
    assert.equal(a.config.use_mora, true);
    assert.equal(a.modules.size, 4);
    for (const m of a.modules.values()) assert.deepEqual(m.aShape, [32, 32]);
  });

  test('the seeded LoRA adapter reads back with 4 modules of A [4, 64], B [64, 4]', async () => {
    const a = await readAdapter(await loraAdapter());
    assert.equal(a.modules.size, 4);
    for (const m of a.modules.values()) assert.deepEqual([m.aShape, m.bShape], [[4, 64], [64, 4]]);
  });

  test('the built CLI runs from the host runtime', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /make-tiny-model/);
  });
});
