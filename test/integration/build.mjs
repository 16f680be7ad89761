// Bundles the in-host suite to out/integration/index.js (CommonJS, `vscode` external), next to the extension so
// that the host hands the suite the same `vscode` API object as the extension under test.
import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

await esbuild.build({
  absWorkingDir: root,
  entryPoints: { index: 'test/integration/suite/index.ts' },
  outdir: 'out/integration',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: 'inline',
  external: ['vscode', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'webgpu'],
  logLevel: 'warning',
});
