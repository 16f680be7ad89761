// "Extract adapter from fine-tuned model" through the command writes the same adapter as the CLI, and extracting the
// merge of the MoRA fixture gives its M back.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { readAdapter } from '../../../src/adapters';
import { mergeAdapters } from '../../../src/adapters/merge';
import { before, suite, test } from './harness';
import { fixturesDir, listTree, moraAdapter, runCli, tinyModel } from './fixtures';
import { activateExtension, expectErrorNotification, requireCommand, workspaceDir } from './util';

suite('extract', () => {
  let base = '';
  let adapter = '';
  let merged = '';
  before(async () => {
    await activateExtension();
    base = await tinyModel();
    adapter = await moraAdapter();
    // The tuned model is made with the core merge, not through a command under test.
    merged = join(fixturesDir(), 'merged-for-extract');
    if (!existsSync(merged)) await mergeAdapters({ base, adapters: [{ dir: adapter }], out: merged });
  });

  test('mora.extractAdapter writes the adapter the CLI writes and recovers the merged M', async () => {
    await requireCommand('mora.extractAdapter');
    const viaCommand = join(workspaceDir(), 'extracted-command');
    const viaCli = join(fixturesDir(), 'extracted-cli');
    const result = (await vscode.commands.executeCommand('mora.extractAdapter', { base, tuned: merged, out: viaCommand, method: 'mora', moraType: 6, r: 8 })) as
      | { out: string; extracted: number }
      | undefined;
    assert.equal(result?.out, viaCommand);
    assert.equal(result?.extracted, 4); // q_proj and v_proj in 2 layers; every other weight is unchanged
    const cli = await runCli(['extract', '--base', base, '--tuned', merged, '--out', viaCli, '--method', 'mora', '--mora-type', '6', '--r', '8', '--quiet']);
    assert.equal(cli.code, 0, cli.stderr);
    // Same code path, same inputs: the same bytes.
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
      assert.deepEqual(await readFile(join(viaCommand, f)), await readFile(join(viaCli, f)), `${f} differs between the command and the CLI`);
    }
    const [want, got] = await Promise.all([readAdapter(adapter), readAdapter(viaCommand)]);
    for (const [p, m] of want.modules) {
      const max = m.A.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      const diff = got.modules.get(p)!.A.reduce((a, x, i) => Math.max(a, Math.abs(x - m.A[i])), 0);
      assert.ok(diff <= 1e-5 * max, `${p}: M differs by ${diff} (max |M| ${max})`);
    }
  });

  test('extracting into an existing folder: ExtractError OutputExists, the folder is left as it was', async () => {
    await requireCommand('mora.extractAdapter');
    const out = join(fixturesDir(), 'extract-existing');
    await mkdir(out, { recursive: true });
    await writeFile(join(out, 'keep.txt'), 'mine');
    const before = listTree(out);
    let err: (Error & { kind?: string }) | undefined;
    try {
      await vscode.commands.executeCommand('mora.extractAdapter', { base, tuned: merged, out, method: 'lora', r: 4 });
    } catch (e) {
      err = e as Error & { kind?: string };
    }
    assert.equal(err?.name, 'ExtractError');
    assert.equal(err?.kind, 'OutputExists');
    assert.deepEqual(listTree(out), before);
    assert.equal(await readFile(join(out, 'keep.txt'), 'utf8'), 'mine');
    await expectErrorNotification(/MoRA: extract failed: ExtractError OutputExists/);
  });
});
