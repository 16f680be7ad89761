// "Merge adapter into base model" through the commands writes the same model as the CLI merge, tensor for tensor.
import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { before, suite, test } from './harness';
import { fixturesDir, loraAdapter, moraAdapter, readAllTensors, runCli, tinyModel } from './fixtures';
import { activateExtension, requireCommand, workspaceDir } from './util';

async function assertSameModel(a: string, b: string): Promise<void> {
  const [ta, tb] = await Promise.all([readAllTensors(a), readAllTensors(b)]);
  assert.deepEqual([...ta.keys()].sort(), [...tb.keys()].sort());
  for (const [name, t] of ta) {
    assert.deepEqual(t.shape, tb.get(name)!.shape, name);
    // Same code path, same inputs: bitwise equality, not a tolerance.
    assert.deepEqual(t.data, tb.get(name)!.data, `${name} differs between the command and the CLI merge`);
  }
}

suite('merge', () => {
  let base = '';
  let adapter = '';
  before(async () => {
    await activateExtension();
    base = await tinyModel();
    adapter = await moraAdapter();
  });

  test('mora.mergeAdapter writes a model whose tensors equal the CLI merge', async () => {
    await requireCommand('mora.mergeAdapter');
    const viaCommand = join(workspaceDir(), 'merged-command');
    const viaCli = join(fixturesDir(), 'merged-cli');
    const result = (await vscode.commands.executeCommand('mora.mergeAdapter', vscode.Uri.file(adapter), { base, out: viaCommand })) as
      | { out: string; mergedTensors: number }
      | undefined;
    assert.equal(result?.out, viaCommand);
    // q_proj and v_proj in 2 layers.
    assert.equal(result?.mergedTensors, 4);
    const cli = await runCli(['merge', '--base', base, '--adapter', adapter, '--out', viaCli, '--quiet']);
    assert.equal(cli.code, 0, cli.stderr);
    await assertSameModel(viaCommand, viaCli);

    // The merge really changed the targeted weights (a plain copy of the base would also be "equal").
    const [merged, orig] = await Promise.all([readAllTensors(viaCommand), readAllTensors(base)]);
    const q = 'model.layers.0.self_attn.q_proj.weight';
    const k = 'model.layers.0.self_attn.k_proj.weight';
    assert.notDeepEqual(merged.get(q)!.data, orig.get(q)!.data);
    assert.deepEqual(merged.get(k)!.data, orig.get(k)!.data);
  });

  test('mora.mergeAdapters (TIES of MoRA + LoRA, weighted) equals the CLI merge with the same options', async () => {
    await requireCommand('mora.mergeAdapters');
    const lora = await loraAdapter();
    const viaCommand = join(workspaceDir(), 'merged-ties-command');
    const viaCli = join(fixturesDir(), 'merged-ties-cli');
    await vscode.commands.executeCommand('mora.mergeAdapters', undefined, {
      base, out: viaCommand, method: 'ties', density: 0.5, adapters: [{ dir: adapter, weight: 0.7 }, { dir: lora, weight: 1.5 }],
    });
    const cli = await runCli([
      'merge', '--base', base, '--adapter', `${adapter}:0.7`, '--adapter', `${lora}:1.5`, '--method', 'ties', '--density', '0.5', '--out', viaCli, '--quiet',
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    await assertSameModel(viaCommand, viaCli);
  });
});
