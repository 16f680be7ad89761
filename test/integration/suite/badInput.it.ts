// Bad input through the commands: the user sees a named error, the caller gets the rejection, nothing is written
// and no input is touched.
import * as assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { before, suite, test } from './harness';
import { fixturesDir, listTree, moraAdapter, tinyModel } from './fixtures';
import { activateExtension, expectErrorNotification, requireCommand, sleep, waitFor, workspaceDir } from './util';

// Runs a command that must fail; returns the rejection.
async function rejects(id: string, ...args: unknown[]): Promise<Error & { kind?: string }> {
  try {
    await vscode.commands.executeCommand(id, ...args);
  } catch (e) {
    return e as Error & { kind?: string };
  }
  throw new Error(`${id} succeeded on bad input`);
}

suite('bad input', () => {
  let base = '';
  let bad = '';
  before(async () => {
    await activateExtension();
    base = await tinyModel();
    bad = join(fixturesDir(), 'bad');
    await mkdir(bad, { recursive: true });
  });

  test('merging a folder without adapter_config.json: named error, no output folder', async () => {
    await requireCommand('mora.mergeAdapters');
    const notAdapter = join(bad, 'not-an-adapter');
    await mkdir(notAdapter, { recursive: true });
    const out = join(workspaceDir(), 'should-not-exist-1');
    const e = await rejects('mora.mergeAdapters', undefined, { base, out, adapters: [notAdapter] });
    assert.equal(e.name, 'MergeError');
    assert.equal(e.kind, 'InvalidAdapter');
    assert.equal(existsSync(out), false);
    await expectErrorNotification(/MoRA: merge failed: MergeError InvalidAdapter/);
  });

  test('merging a truncated adapter: named error, no output folder, the adapter is left as it was', async () => {
    await requireCommand('mora.mergeAdapter');
    const good = await moraAdapter();
    const broken = join(bad, 'truncated-adapter');
    await mkdir(broken, { recursive: true });
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) await copyFile(join(good, f), join(broken, f));
    await truncate(join(broken, 'adapter_model.safetensors'), 1000);
    const before = await readFile(join(broken, 'adapter_model.safetensors'));
    const out = join(workspaceDir(), 'should-not-exist-2');
    const e = await rejects('mora.mergeAdapter', vscode.Uri.file(broken), { base, out });
    assert.match(e.name, /Error$/);
    assert.notEqual(e.name, 'Error', `expected a named error, got ${e.name}: ${e.message}`);
    assert.equal(existsSync(out), false);
    assert.deepEqual(listTree(broken), ['adapter_config.json', 'adapter_model.safetensors']);
    assert.deepEqual(await readFile(join(broken, 'adapter_model.safetensors')), before);
    await expectErrorNotification(/MoRA: merge failed: \w+Error/);
  });

  test('opening a folder without weights: named error, mora.json untouched', async () => {
    await requireCommand('mora.openModel');
    const empty = join(bad, 'no-weights');
    await mkdir(empty, { recursive: true });
    await writeFile(join(empty, 'config.json'), '{}');
    const moraJson = join(workspaceDir(), 'mora.json');
    const beforeJson = existsSync(moraJson) ? await readFile(moraJson, 'utf8') : null;
    const e = await rejects('mora.openModel', vscode.Uri.file(empty));
    assert.notEqual(e.name, 'Error', `expected a named error, got ${e.name}: ${e.message}`);
    assert.equal(existsSync(moraJson) ? await readFile(moraJson, 'utf8') : null, beforeJson);
    await expectErrorNotification(/MoRA: .*failed/);
  });

  test('inspecting the spectrum of a folder that is no adapter: named error, nothing written', async () => {
    await requireCommand('mora.inspectSpectrum');
    const notAdapter = join(bad, 'not-an-adapter-2');
    await mkdir(notAdapter, { recursive: true });
    // A fresh panel rather than the one the spectrum suite left open: wait until it is really gone.
    const webviews = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await waitFor('all webview panels to close', () => webviews().length === 0);
    await sleep(500);
    const e = await rejects('mora.inspectSpectrum', vscode.Uri.file(notAdapter), { base });
    assert.notEqual(e.name, 'Error', `expected a named error, got ${e.name}: ${e.message}`);
    assert.deepEqual(listTree(notAdapter), []);
    await expectErrorNotification(/MoRA: spectrum failed: \w+Error/);
  });

  test('training with data that does not exist: named error, no run folder', async () => {
    await requireCommand('mora.trainAdapter');
    const out = join(workspaceDir(), 'runs', 'should-not-exist');
    const e = await rejects('mora.trainAdapter', {
      model: base, data: join(bad, 'missing.jsonl'), out, targets: ['q_proj'], steps: 2, showView: false,
    });
    assert.equal(e.name, 'TrainingConfigError');
    assert.equal(e.kind, 'invalid');
    assert.equal(existsSync(out), false);
    await expectErrorNotification(/MoRA: training failed: TrainingConfigError invalid/);
  });
});
