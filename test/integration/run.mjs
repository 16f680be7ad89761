// Runner 2: the in-host suite in a real VS Code served by code-server and driven by headless Debian Chromium
// through playwright-core; needs nothing but the npm registry and Debian apt (see setup.sh).
// Usage: node test/integration/run.mjs      (npm run test:integration)
//   MORA_IT_GREP=regex      run only matching tests      MORA_IT_TIMEOUT_S  whole-run limit (default 900)
//   MORA_IT_SKIP_BUILD=1    reuse dist/ and out/          MORA_IT_KEEP=1     keep the temp folder
//   MORA_IT_VERBOSE=1       also print the workbench's own log and browser console (to stderr)
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const env = process.env;
const verbose = env.MORA_IT_VERBOSE === '1';
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const say = (msg) => process.stderr.write(`[it-run ${elapsed()}] ${msg}\n`);
const summaryRe = /^(\d+) passed, (\d+) failed$/;
// Marks the suite's own lines among the workbench's log lines (see suite/util.ts emit()).
const linePrefix = '\u200bmora-it\u200b ';

// --- tools and build -------------------------------------------------------------------------------------------
function giveUp(msg) {
  say(msg);
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}
let tools;
try {
  tools = Object.fromEntries(
    execFileSync('bash', [join(here, 'setup.sh')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => line.split(/=(.*)/s).slice(0, 2)),
  );
} catch (e) {
  giveUp(`setup.sh failed (${e.status ?? e.message})`);
}
say(`tools ready: code-server on ${tools.NODE24}, ${tools.CHROMIUM}`);
if (env.MORA_IT_SKIP_BUILD !== '1') {
  // esbuild's per-file listing is noise here; it is shown only when the build fails.
  for (const script of ['esbuild.mjs', join(here, 'build.mjs')]) {
    try {
      execFileSync(process.execPath, [script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    } catch (e) {
      giveUp(`build ${script} failed:\n${e.stdout}${e.stderr}`);
    }
  }
  say('built dist/ and out/integration/');
}

// --- temp folders, port, server --------------------------------------------------------------------------------
const tmp = mkdtempSync(join(tmpdir(), 'mora-it-'));
const dirs = Object.fromEntries(['ws', 'user', 'extensions', 'bridge'].map((d) => [d, join(tmp, d)]));
for (const d of Object.values(dirs)) mkdirSync(d);
const screenshotDir = join(here, 'screenshots');
mkdirSync(screenshotDir, { recursive: true });
// An explicit config file keeps code-server from writing ~/.config/code-server/config.yaml.
const configFile = join(tmp, 'config.yaml');
writeFileSync(configFile, 'auth: none\ncert: false\n');
const serverLog = join(tmp, 'code-server.log');
// A quiet workbench: no welcome page, chat or update checks around the views the screenshots are about.
mkdirSync(join(dirs.user, 'User'), { recursive: true });
writeFileSync(
  join(dirs.user, 'User', 'settings.json'),
  JSON.stringify({
    'workbench.startupEditor': 'none',
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.disableAIFeatures': true,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
  }),
);

const port = await new Promise((resolve, reject) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
  s.on('error', reject);
});

const logFd = openSync(serverLog, 'a');
// detached: the server gets its own process group, so that killing -pid also ends its extension host and the
// trainer processes the extension starts.
const server = spawn(
  tools.NODE24,
  [
    tools.CODE_SERVER_ENTRY, '--config', configFile, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
    '--user-data-dir', dirs.user, '--extensions-dir', dirs.extensions, '--disable-telemetry',
    '--disable-update-check', '--disable-workspace-trust', '--vscode-option', 'enable-smoke-test-driver',
  ],
  { detached: true, stdio: ['ignore', logFd, logFd], env: { ...env, MORA_IT_BRIDGE_DIR: dirs.bridge, MORA_IT_LINE_PREFIX: linePrefix } },
);
let serverExited = null;
const serverExit = new Promise((resolve) => server.on('exit', (code, sig) => resolve((serverExited = sig ?? code))));

let browser = null;
let cleanedUp = false;
function killServerGroup(signal) {
  try {
    process.kill(-server.pid, signal);
  } catch {
    // Already gone.
  }
}
async function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  await browser?.close().catch(() => {});
  if (serverExited === null) {
    killServerGroup('SIGTERM');
    await Promise.race([serverExit, new Promise((r) => setTimeout(r, 5000))]);
  }
  killServerGroup('SIGKILL');
  if (env.MORA_IT_KEEP === '1') say(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', () => killServerGroup('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => cleanup().finally(() => process.exit(130)));
}

function serverLogTail(lines = 40) {
  try {
    return readFileSync(serverLog, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}

async function waitForServer() {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (serverExited !== null) throw new Error(`code-server exited (${serverExited}):\n${serverLogTail()}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`code-server did not answer on port ${port}:\n${serverLogTail()}`);
}

// --- the UI bridge: requests arrive as log lines from the suite, answers go to files it polls -------------------
// `inFrames` looks inside every frame too: webview panels live in nested iframes of the workbench page.
async function locate(page, request) {
  const frames = request.inFrames ? page.frames() : [page.mainFrame()];
  for (const f of frames) {
    let loc = f.locator(request.selector);
    if (request.hasText) loc = loc.filter({ hasText: request.hasText });
    if ((await loc.count().catch(() => 0)) > 0) return loc;
  }
  return page.locator(request.selector);
}

let bridgeQueue = Promise.resolve();
function handleBridge(page, id, request) {
  bridgeQueue = bridgeQueue.then(async () => {
    let answer;
    try {
      let value;
      if (request.action === 'screenshot') {
        value = join(screenshotDir, `${request.name.replace(/[^\w.-]/g, '_')}.png`);
        // Park the pointer so that no hover tooltip from the last click covers the view.
        await page.mouse.move(1399, 899);
        await page.keyboard.press('Escape');
        await page.waitForTimeout(500);
        await page.screenshot({ path: value });
      } else if (request.action === 'texts') {
        const loc = await locate(page, request);
        value = request.attribute
          ? await loc.evaluateAll((els, a) => els.map((el) => el.getAttribute(a)), request.attribute)
          : await loc.allInnerTexts();
      } else if (request.action === 'html') {
        value = await (await locate(page, request)).evaluateAll((els) => els.map((el) => el.outerHTML));
      } else if (request.action === 'click') {
        await (await locate(page, request)).first().click({ timeout: 10_000 });
        value = true;
      } else {
        throw new Error(`unknown action ${request.action}`);
      }
      answer = { ok: true, value };
    } catch (e) {
      answer = { ok: false, error: String(e?.message ?? e) };
    }
    const file = join(dirs.bridge, `${id}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify(answer));
    renameSync(`${file}.tmp`, file);
  });
}

// --- run ----------------------------------------------------------------------------------------------------------
let summary = null;
let exitCode = 1;
try {
  await waitForServer();
  say(`code-server ${port} up`);
  const require = createRequire(join(tools.PLAYWRIGHT_CORE, 'package.json'));
  const { chromium } = require(tools.PLAYWRIGHT_CORE);
  browser = await chromium.launch({
    executablePath: tools.CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  let resolveExit;
  const exited = new Promise((r) => (resolveExit = r));
  await page.exposeFunction('codeAutomationExit', (code) => resolveExit(Number(code)));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = (Array.isArray(args) ? args : [args]).map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    for (const line of text.split('\n')) {
      if (!line.startsWith(linePrefix)) {
        // The rest is the workbench's own log; errors that name the extension are worth seeing anyway.
        if (verbose || (type === 'error' && /mora/i.test(line))) process.stderr.write(`  [workbench ${type}] ${line}\n`);
        continue;
      }
      const ours = line.slice(linePrefix.length);
      const bridge = /^@@mora-ui (\S+) (.*)$/.exec(ours);
      if (bridge) handleBridge(page, bridge[1], JSON.parse(bridge[2]));
      else if (summaryRe.test(ours)) summary = ours;
      else process.stdout.write(`${ours}\n`);
    }
  });
  if (verbose) page.on('console', (m) => say(`browser ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => say(`page error: ${e.message}`));

  const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
  const payload = [
    ['extensionDevelopmentPath', remote(root)],
    ['extensionTestsPath', remote(join(root, 'out', 'integration', 'index.js'))],
  ];
  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(dirs.ws)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  await page.goto(url);
  say('workbench loading; suite output follows');
  const limitS = Number(env.MORA_IT_TIMEOUT_S ?? 900);
  const timeout = new Promise((r) => setTimeout(() => r('timeout'), limitS * 1000));
  const outcome = await Promise.race([exited, timeout, serverExit.then(() => 'server-exit')]);
  if (typeof outcome === 'number') {
    exitCode = outcome;
    say(`extension host exited with ${outcome}`);
  } else {
    say(outcome === 'timeout' ? `no exit after ${limitS} s` : `code-server died:\n${serverLogTail()}`);
  }
  await bridgeQueue;
} catch (e) {
  say(`runner failed: ${e?.stack ?? e}`);
} finally {
  if (exitCode !== 0 && !summary) say(`code-server log tail:\n${serverLogTail(25)}`);
  await cleanup();
}
// The very last line is the summary; a run that never reported one counts as one failure.
if (!summary || (exitCode !== 0 && summaryRe.exec(summary)[2] === '0')) {
  summary = `${summary ? summaryRe.exec(summary)[1] : 0} passed, 1 failed`;
}
say(`done in ${elapsed()}`);
process.stdout.write(`${summary}\n`);
process.exit(exitCode === 0 && summaryRe.exec(summary)[2] === '0' ? 0 : 1);
