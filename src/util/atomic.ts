import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** A sibling temp path: same directory, so the final rename stays on one file system and is atomic. */
export function tempSibling(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Writes a file through a temp sibling and a rename, so readers never see a half-written file. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempSibling(target);
  try {
    const fh = await fs.open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Builds a directory in a temp sibling and renames it into place only when `fill` succeeds.
 * A failed or cancelled build leaves nothing behind. With `replace`, an existing target is swapped out
 * (moved aside, then removed) so a reader sees either the old or the new folder, never a mix.
 */
export async function writeDirAtomic(
  target: string,
  fill: (tmpDir: string) => Promise<void>,
  opts: { replace?: boolean } = {},
): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempSibling(target);
  await fs.mkdir(tmp);
  try {
    await fill(tmp);
    const exists = await fs.stat(target).then(() => true, () => false);
    if (exists && !opts.replace) throw new Error(`refusing to overwrite existing ${target}`);
    if (exists) {
      const old = tempSibling(target) + '-old';
      await fs.rename(target, old);
      try {
        await fs.rename(tmp, target);
      } catch (err) {
        // Put the previous folder back: a failed replace must leave what was there.
        await fs.rename(old, target);
        throw err;
      }
      await fs.rm(old, { recursive: true, force: true });
    } else {
      await fs.rename(tmp, target);
    }
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
