import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';

/** Webviews may load files only from the extension's build output and media folder. */
export function webviewRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')];
}

/**
 * The page of a panel whose bundle is dist/webview/<name>.js (+ .css from esbuild and media/<name>.css).
 * The CSP allows nothing by default; the one script runs by nonce, styles, images and fonts only from the extension.
 */
export function webviewHtml(
  webview: vscode.Webview,
  extensionUri: vscode.Uri,
  page: { name: string; title: string; appAttributes?: Record<string, string> },
): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (...p: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...p));
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource}`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const attrs = Object.entries(page.appAttributes ?? {})
    .map(([k, v]) => ` data-${k}="${escape(v)}"`)
    .join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${asset('dist', 'webview', `${page.name}.css`)}">
<link rel="stylesheet" href="${asset('media', `${page.name}.css`)}">
<title>${escape(page.title)}</title>
</head>
<body>
<div id="app"${attrs}></div>
<script nonce="${nonce}" src="${asset('dist', 'webview', `${page.name}.js`)}"></script>
</body>
</html>`;
}
