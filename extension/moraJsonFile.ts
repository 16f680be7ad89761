// Reading and writing the workspace's mora.json. The file lives at the root of the first workspace folder so the
// user can open, edit and commit it; in an empty window it falls back to the extension's global storage.
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as vscode from 'vscode';
import { moraJsonProblems, serializeMoraJson, TrainingConfigError, type MoraJson } from '../src/model/trainingConfig';
import { writeFileAtomic } from '../src/util/atomic';
import { workspaceDir } from './args';

export const moraJsonName = 'mora.json';

let fallbackDir: string | undefined;

/** Where mora.json lives; `context` supplies the fallback directory for empty windows. */
export function initMoraJsonLocation(context: vscode.ExtensionContext): void {
  fallbackDir = context.globalStorageUri.fsPath;
}

/** The folder that relative paths in mora.json are resolved against. */
export function configBaseDir(): string {
  const dir = workspaceDir() ?? fallbackDir;
  if (!dir) throw new TrainingConfigError('missing', 'no workspace folder is open and no storage folder is available');
  return dir;
}

export function moraJsonPath(): string {
  return path.join(configBaseDir(), moraJsonName);
}

export interface MoraJsonRead {
  json: MoraJson;
  /** Validation problems; when non-empty, `json` holds only the valid fields. */
  problems: string[];
  exists: boolean;
}

/** Reads mora.json leniently: a missing file is {}, invalid fields are dropped and reported in `problems`. */
export async function readMoraJson(): Promise<MoraJsonRead> {
  let text: string;
  try {
    text = await fs.readFile(moraJsonPath(), 'utf8');
  } catch {
    return { json: {}, problems: [], exists: false };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { json: {}, problems: [`mora.json is not valid JSON: ${(err as Error).message}`], exists: true };
  }
  const problems = moraJsonProblems(raw);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { json: {}, problems, exists: true };
  const bad = new Set(problems.map((p) => p.split(':')[0]));
  const json = Object.fromEntries(Object.entries(raw).filter(([k]) => !bad.has(k))) as MoraJson;
  return { json, problems, exists: true };
}

/** The text of our own last write: the watcher ignores events whose file content is exactly that. */
let lastWrittenText: string | undefined;
/** Updates are chained so two quick selection changes cannot interleave their read-modify-write. */
let updateChain: Promise<unknown> = Promise.resolve();

/**
 * Merges `patch` into mora.json (undefined values delete keys) and writes it atomically. Refuses to touch a file
 * that is not valid JSON, so a half-typed hand edit is never lost.
 */
export function updateMoraJson(patch: Partial<MoraJson>): Promise<MoraJson> {
  const next = updateChain.then(() => applyMoraJsonPatch(patch));
  updateChain = next.catch(() => undefined);
  return next;
}

async function applyMoraJsonPatch(patch: Partial<MoraJson>): Promise<MoraJson> {
  const file = moraJsonPath();
  let current: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) current = parsed;
    else throw new SyntaxError('not an object');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new TrainingConfigError('syntax', `${file} is not a valid JSON object; fix it before the selection can be saved`);
    }
  }
  const next: Record<string, unknown> = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete next[k];
    else next[k] = v;
  }
  await fs.mkdir(path.dirname(file), { recursive: true });
  const text = serializeMoraJson(next as MoraJson);
  lastWrittenText = text;
  await writeFileAtomic(file, text);
  return next as MoraJson;
}

/** Fires when mora.json is created, changed or deleted on disk (hand edits included). */
export function watchMoraJson(onChange: () => void): vscode.Disposable {
  const dir = workspaceDir();
  if (!dir) return new vscode.Disposable(() => undefined);
  const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(dir, moraJsonName));
  // A change event can arrive after a newer write of ours; re-reading then would restore an older selection.
  // Events whose content is what we last wrote are our own echo and are dropped.
  const onFileChange = () => {
    fs.readFile(moraJsonPath(), 'utf8').then(
      (text) => {
        if (text !== lastWrittenText) onChange();
      },
      () => onChange(),
    );
  };
  const subs = [watcher, watcher.onDidChange(onFileChange), watcher.onDidCreate(onFileChange), watcher.onDidDelete(onChange)];
  return vscode.Disposable.from(...subs);
}
