// Runner 1, the standard one: the in-host suite in a VS Code downloaded by @vscode/test-electron. Needs network
// access to update.code.visualstudio.com (the download is cached in .vscode-test/); CI uses run.mjs instead.
// Usage: npm run test:vscode    MORA_VSCODE_VERSION=1.95.0 picks a version (default: stable)
//   MORA_IT_SKIP_BUILD=1 reuses dist/ and out/; MORA_IT_GREP=regex runs only matching tests (as in run.mjs)
import { runTests } from '@vscode/test-electron';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
if (process.env.MORA_IT_SKIP_BUILD !== '1') {
  execFileSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(process.execPath, [join(here, 'build.mjs')], { cwd: root, stdio: 'inherit' });
}

const tmp = mkdtempSync(join(tmpdir(), 'mora-vscode-'));
const ws = join(tmp, 'ws');
mkdirSync(ws);
let code = 1;
try {
  code = await runTests({
    version: process.env.MORA_VSCODE_VERSION ?? 'stable',
    extensionDevelopmentPath: root,
    extensionTestsPath: join(root, 'out', 'integration', 'index.js'),
    launchArgs: [ws, '--disable-extensions', '--disable-workspace-trust', '--skip-welcome', `--user-data-dir=${join(tmp, 'user')}`],
  });
} catch (e) {
  console.error(`test-electron failed: ${e?.message ?? e}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
