// The extension activates inside a real extension host and registers every command it contributes.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { suite, test } from './harness';
import { activateExtension, extension, packageJson } from './util';

suite('activation', () => {
  test('the extension activates without throwing', async () => {
    await activateExtension();
    assert.equal(extension().isActive, true);
  });

  test('every command in contributes.commands is registered', async () => {
    const contributed = (packageJson().contributes.commands ?? []).map((c) => c.command);
    assert.ok(contributed.length >= 12, `package.json contributes only ${contributed.length} commands`);
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = contributed.filter((id) => !registered.has(id));
    assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
  });
});
