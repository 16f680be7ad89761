// Commands are driven both from the UI (menus pass Uris or tree elements) and from tests (strings, option
// objects); these helpers turn whatever arrived into the plain values the features work with.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

/** A file system path from a Uri, a path string, or anything with `fsPath`/`resourceUri`/`uri`; undefined otherwise. */
export function toFsPath(x: unknown): string | undefined {
  if (typeof x === 'string' && x !== '') return x.startsWith('file://') ? vscode.Uri.parse(x).fsPath : x;
  if (x instanceof vscode.Uri) return x.fsPath;
  if (typeof x === 'object' && x !== null) {
    const o = x as { fsPath?: unknown; resourceUri?: unknown; uri?: unknown; scheme?: unknown; path?: unknown };
    if (typeof o.fsPath === 'string') return o.fsPath;
    if (o.resourceUri) return toFsPath(o.resourceUri);
    if (o.uri) return toFsPath(o.uri);
  }
  return undefined;
}

/** True when a command was called with arguments (a test or another command) rather than from the palette. */
export function calledProgrammatically(args: unknown[]): boolean {
  return args.some((a) => a !== undefined && a !== null);
}

/**
 * Runs a command body with one error policy: the user always sees a message; programmatic callers also get
 * the rejection (so tests can assert on it), while palette calls do not, to avoid VS Code's duplicate toast.
 */
export async function withErrorReport<T>(what: string, programmatic: boolean, body: () => Promise<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (err) {
    const e = err as Error & { kind?: string };
    const label = e.kind ? `${e.name} ${e.kind}` : e.name || 'Error';
    void vscode.window.showErrorMessage(`MoRA: ${what} failed: ${label}: ${e.message}`);
    if (programmatic) throw err;
    return undefined;
  }
}

/** The first workspace folder's path, or undefined in an empty window. */
export function workspaceDir(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}

/**
 * The `force` to write `out` with when it may already exist: `force` itself when given or when `out` is new; else
 * programmatic callers get `exists(out)` thrown, and the user is asked (true: Replace, undefined: declined).
 */
export async function confirmReplace(out: string, force: boolean, programmatic: boolean, exists: (out: string) => Error): Promise<boolean | undefined> {
  if (force || !(await fs.stat(out).then(() => true, () => false))) return force;
  if (programmatic) throw exists(out);
  const answer = await vscode.window.showWarningMessage(`${path.basename(out)} already exists. Replace it?`, { modal: true }, 'Replace');
  return answer === 'Replace' ? true : undefined;
}
