// The ΔW spectrum panel: the command opens a webview, the webview asks the host for the analysis and renders it
// (a message round trip host ↔ webview), and the figures it shows come from the adapter that was opened.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { before, skip, suite, test } from './harness';
import { analyzeAdapter } from '../../../src/spectrum/analyze';
import type { SpectrumReportView } from '../../../src/protocol/spectrum';
import { moraAdapter, tinyModel } from './fixtures';
import { activateExtension, bridgeDir, requireCommand, screenshot, ui, waitFor } from './util';

function webviewTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview);
}

suite('spectrum panel', () => {
  let adapter = '';
  let base = '';
  before(async () => {
    await activateExtension();
    base = await tinyModel();
    adapter = await moraAdapter();
  });

  test('mora.inspectSpectrum opens the panel, which renders every adapted module from the host', async () => {
    await requireCommand('mora.inspectSpectrum');
    const before = webviewTabs().length;
    // The command resolves with the report it sent to the panel; MoRA's M alone does not give the layer sizes,
    // hence the base model.
    const report = (await vscode.commands.executeCommand('mora.inspectSpectrum', vscode.Uri.file(adapter), { base })) as SpectrumReportView;
    const tab = await waitFor('a new spectrum webview tab', () => webviewTabs().length > before && webviewTabs().find((t) => /spectrum/i.test(t.label)));
    assert.ok(tab.isActive, 'the spectrum panel is not the active tab');

    // The same analysis run directly by the core: the worker process and JSON transport lose nothing.
    const direct = await analyzeAdapter(adapter, { base });
    assert.equal(report.kind, 'mora');
    assert.deepEqual(report.modules.map((m) => m.path), direct.modules.map((m) => m.path));
    assert.deepEqual(report.modules.map((m) => m.sigma), direct.modules.map((m) => Array.from(m.sigma)));
    // A type-6 ΔW of a [64, 64] layer with r̂ = 32: 2 rotated copies of M on the diagonal, so at most 64 σ.
    for (const m of report.modules) assert.ok(m.sigma.length > 0 && m.sigma.length <= 64 && m.sigma[0] > 0, m.path);

    if (!bridgeDir) skip('reading the webview needs the UI bridge of runner 2');
    // The page starts empty; module paths appear only after webview → host (spectrum/ready) and host → webview
    // (spectrum/init with the report): a full message round trip through the real webview.
    let shown: string[] = [];
    await waitFor('the adapted modules in the panel', async () => {
      shown = (await ui({ action: 'texts', selector: 'vscode-option', inFrames: true })) as string[];
      return report.modules.every((m) => shown.some((t) => t.trim() === m.path));
    }, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}; panel options: ${JSON.stringify(shown)}`);
    });
    await screenshot('spectrum-panel');
  }, 90_000);
});
