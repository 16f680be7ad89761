import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { writeDirAtomic, writeFileAtomic } from '../../src/util/atomic';

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mora-atomic-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('writeFileAtomic replaces the file whole and leaves no temp file', async () => {
  await withTmp(async (dir) => {
    const f = path.join(dir, 'a.json');
    await writeFileAtomic(f, 'old');
    await writeFileAtomic(f, 'new');
    assert.equal(await readFile(f, 'utf8'), 'new');
    assert.deepEqual(await readdir(dir), ['a.json']);
  });
});

test('writeDirAtomic: a failing fill leaves neither the target nor a temp folder', async () => {
  await withTmp(async (dir) => {
    const target = path.join(dir, 'out');
    await assert.rejects(
      writeDirAtomic(target, async (tmp) => {
        await writeFile(path.join(tmp, 'half'), 'x');
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.deepEqual(await readdir(dir), []);
  });
});

test('writeDirAtomic refuses an existing folder unless replace, and a failed replace keeps the old one', async () => {
  await withTmp(async (dir) => {
    const target = path.join(dir, 'out');
    await writeDirAtomic(target, (tmp) => writeFile(path.join(tmp, 'v'), '1'));
    await assert.rejects(writeDirAtomic(target, (tmp) => writeFile(path.join(tmp, 'v'), '2')), /refusing to overwrite/);
    assert.equal(await readFile(path.join(target, 'v'), 'utf8'), '1');
    await assert.rejects(writeDirAtomic(target, () => Promise.reject(new Error('cancelled')), { replace: true }), /cancelled/);
    assert.equal(await readFile(path.join(target, 'v'), 'utf8'), '1');
    await writeDirAtomic(target, (tmp) => writeFile(path.join(tmp, 'v'), '3'), { replace: true });
    assert.equal(await readFile(path.join(target, 'v'), 'utf8'), '3');
    assert.deepEqual(await readdir(dir), ['out']);
  });
});
