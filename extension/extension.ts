import * as vscode from 'vscode';

// activate() only wires features; each feature lives in its own file and returns a Disposable.
export function activate(context: vscode.ExtensionContext): void {
  context.subscriptions.push();
}

export function deactivate(): void {}
