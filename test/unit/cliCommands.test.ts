// The CLI's command list: lazily listed commands must describe the module they load, and the bundle split must keep
// TensorFlow.js out of dist/cli.js (it is ≈ 150 ms of start-up for every command) while the model commands still run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { resolveCommand } from '../../src/cli/command';
import { commands } from '../../src/cli/commands';
import { runCli } from './cliTestUtil';

const dist = path.join(__dirname, '..', '..', 'dist');

test('every lazily listed command loads a command with the same name and summary', async () => {
  const lazy = commands.filter((c) => 'load' in c);
  assert.deepEqual(lazy.map((c) => c.name), ['eval-uuid', 'demo']);
  for (const entry of commands) {
    const c = await resolveCommand(entry);
    assert.equal(c.name, entry.name);
    assert.equal(c.summary, entry.summary);
    assert.match(c.usage, new RegExp(`^usage: mora ${c.name} `));
  }
  const help = await runCli(['demo', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: mora demo \[--steps N\]/);
});

test('dist/cli.js holds no TensorFlow.js; the model commands load dist/cliModel.js (needs npm run build)', () => {
  const cli = readFileSync(path.join(dist, 'cli.js'), 'utf8');
  assert.ok(!cli.includes('@tensorflow/tfjs-core'), 'TensorFlow.js was bundled into cli.js');
  assert.ok(readFileSync(path.join(dist, 'cliModel.js'), 'utf8').includes('@tensorflow/tfjs-core'));
  const run = spawnSync(process.execPath, [path.join(dist, 'cli.js'), 'eval-uuid', '--model'], { encoding: 'utf8' });
  // The bundled command ran (its own flag check answered), so cliModel.js was found and loaded.
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /^mora eval-uuid: usage: /);
});
