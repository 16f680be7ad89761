// Entry point loaded by the extension host (extensionTestsPath): VS Code calls run() and exits with 0 when it
// resolves, 1 when it rejects. Runner 2 reads these lines through window.codeAutomationLog.
import { runAll } from './harness';
import { emit } from './util';
// Test files register their suites on import; the order here is the run order.
import './activation.it';
import './fixtures.it';
import './modelTree.it';
import './train.it';
import './merge.it';
import './extract.it';
import './spectrum.it';
import './badInput.it';

export async function run(): Promise<void> {
  const grep = process.env.MORA_IT_GREP ? new RegExp(process.env.MORA_IT_GREP) : undefined;
  const t0 = Date.now();
  const result = await runAll(emit, grep);
  if (result.skipped) emit(`${result.skipped} skipped`);
  for (const f of result.failures) emit(`FAILED: ${f}`);
  emit(`in-host suite took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // The CI reads this exact last line.
  emit(`${result.passed} passed, ${result.failed} failed`);
  if (result.failed > 0) throw new Error(`${result.failed} integration test(s) failed`);
}
