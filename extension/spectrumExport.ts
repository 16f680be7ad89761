// Saving what the spectrum panel shows: the metrics of every finished report as CSV, or a chart the webview drew as
// PNG. Both are suggested next to the (first) adapter folder and written atomically.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { spectrumCsv, type SpectrumReportView } from '../src/protocol/spectrum';
import { writeFileAtomic } from '../src/util/atomic';

/** A bare file name would land in the process's cwd or /, hence the adapter's parent folder. */
function exportUri(adapter: string, file: string): vscode.Uri {
  return vscode.Uri.file(path.join(path.dirname(adapter), file));
}

/** One row per module of every finished report (intruder counts included when they were computed). */
export async function saveSpectrumCsv(adapter: string, reports: (SpectrumReportView | null)[]): Promise<void> {
  const done = reports.filter((r): r is SpectrumReportView => r !== null);
  if (done.length === 0) return void vscode.window.showWarningMessage('MoRA: no finished spectrum to export yet');
  const to = await vscode.window.showSaveDialog({ filters: { CSV: ['csv'] }, saveLabel: 'Export spectrum CSV', defaultUri: exportUri(adapter, 'spectrum.csv') });
  if (to) await writeFileAtomic(to.fsPath, spectrumCsv(done));
}

/** `dataUrl` was validated as a bounded base64 PNG data URL by isSpectrumToHost. */
export async function saveSpectrumPng(adapter: string, name: string, dataUrl: string): Promise<void> {
  const to = await vscode.window.showSaveDialog({ filters: { PNG: ['png'] }, defaultUri: exportUri(adapter, `${name}.png`) });
  if (to) await writeFileAtomic(to.fsPath, Buffer.from(dataUrl.slice(dataUrl.indexOf(',') + 1), 'base64'));
}
