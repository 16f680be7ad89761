// Helpers shared by the in-host tests: the extension under test, the workspace, polling, and the optional UI
// bridge through which runner 2 (code-server + playwright) takes screenshots and reads the workbench DOM.
import * as vscode from 'vscode';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { skip } from './harness';

export const extensionId = 'mora-studio.mora-studio';

export function extension(): vscode.Extension<unknown> {
  const ext = vscode.extensions.getExtension(extensionId);
  if (!ext) throw new Error(`extension ${extensionId} is not installed in this host`);
  return ext;
}

export async function activateExtension(): Promise<unknown> {
  const ext = extension();
  return ext.isActive ? ext.exports : await ext.activate();
}

export function repoRoot(): string {
  return extension().extensionPath;
}

export interface PackageJson {
  contributes: {
    commands?: { command: string; title: string }[];
    viewsContainers?: Record<string, { id: string; title: string }[]>;
    views?: Record<string, { id: string; name: string }[]>;
  };
}

export function packageJson(): PackageJson {
  return JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as PackageJson;
}

export function workspaceDir(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('the integration run must open a workspace folder');
  return folder.uri.fsPath;
}

// Runner 2 sees the suite's lines mixed with the whole workbench log; a prefix it chooses marks ours.
const linePrefix = process.env.MORA_IT_LINE_PREFIX ?? '';
export function emit(text: string): void {
  console.log(text.split('\n').map((line) => `${linePrefix}${line}`).join('\n'));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Polls until `probe` returns a value other than undefined/false; the last probe error is named in the timeout.
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await sleep(100);
  }
}

export async function commandExists(id: string): Promise<boolean> {
  return (await vscode.commands.getCommands(true)).includes(id);
}

// Features land one by one while this suite grows: a test whose command is not registered yet is skipped with that
// reason. Nothing hides behind this: the activation suite fails for every contributed command that is missing.
export async function requireCommand(id: string): Promise<void> {
  if (!(await commandExists(id))) skip(`${id} is not registered yet (not wired in extension/extension.ts)`);
}

// --- UI bridge. Runner 2 sets MORA_IT_BRIDGE_DIR; a request is one log line `@@mora-ui <id> <json>` that the runner
// sees through window.codeAutomationLog; it acts on the page and writes <dir>/<id>.json. Without a runner on the
// other end (runner 1, @vscode/test-electron) the bridge is absent and UI checks report that instead of passing.
export type UiRequest =
  | { action: 'screenshot'; name: string }
  | { action: 'texts'; selector: string; attribute?: string; hasText?: string; inFrames?: boolean }
  | { action: 'html'; selector: string; inFrames?: boolean }
  | { action: 'click'; selector: string; hasText?: string; inFrames?: boolean };

export const bridgeDir = process.env.MORA_IT_BRIDGE_DIR ?? null;
let bridgeSeq = 0;

export async function ui(request: UiRequest, timeoutMs = 20_000): Promise<unknown> {
  if (!bridgeDir) throw new Error('no UI bridge in this runner');
  const id = `req${++bridgeSeq}`;
  const file = join(bridgeDir, `${id}.json`);
  emit(`@@mora-ui ${id} ${JSON.stringify(request)}`);
  await waitFor(`UI bridge answer to ${JSON.stringify(request)}`, () => existsSync(file), timeoutMs);
  const answer = JSON.parse(await readFile(file, 'utf8')) as { ok: boolean; value?: unknown; error?: string };
  await rm(file, { force: true });
  if (!answer.ok) throw new Error(`UI bridge ${request.action} failed: ${answer.error}`);
  return answer.value;
}

// Screenshots are for humans; a missing bridge only skips them.
export async function screenshot(name: string): Promise<string | null> {
  if (!bridgeDir) return null;
  return (await ui({ action: 'screenshot', name }, 30_000)) as string;
}

// Waits until an error notification matching `re` exists, proving the user was told. The smoke-test driver that
// runner 2 needs suppresses toasts, so the check opens the notification center and reads it there. Under a runner
// without the UI bridge it returns false and the caller's other assertions still run.
export async function expectErrorNotification(re: RegExp): Promise<boolean> {
  if (!bridgeDir) return false;
  let seen: string[] = [];
  await vscode.commands.executeCommand('notifications.showList');
  try {
    await waitFor(`an error notification matching ${re}`, async () => {
      seen = (await ui({ action: 'texts', selector: '.notifications-center .notification-list-item' })) as string[];
      return seen.some((t) => re.test(t));
    }, 15_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}; notifications: ${JSON.stringify(seen)}`);
  } finally {
    await vscode.commands.executeCommand('notifications.clearAll');
    await vscode.commands.executeCommand('notifications.hideList');
  }
  return true;
}
