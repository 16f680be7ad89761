// A tiny mocha-style runner (suite/test/test.skip/before/after) that lives inside the bundle, so that the suite
// needs no test framework in the extension host and no extra npm dependency. Tests run one after another in
// declaration order; each has a timeout; a failing `before` fails every test of its suite.

type Fn = () => unknown | Promise<unknown>;

interface Case {
  title: string;
  fn: Fn | null;
  skipReason: string | null;
  timeoutMs: number;
}

interface Suite {
  name: string;
  cases: Case[];
  before: Fn[];
  after: Fn[];
}

export interface RunResult {
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
}

// Generous by default: the first tests pay for extension activation and model generation on a busy 2-core box.
const defaultTimeoutMs = 60_000;

const suites: Suite[] = [];
let current: Suite | null = null;

export function suite(name: string, body: () => void): void {
  const s: Suite = { name, cases: [], before: [], after: [] };
  suites.push(s);
  const outer = current;
  current = s;
  try {
    body();
  } finally {
    current = outer;
  }
}

function currentSuite(): Suite {
  if (!current) throw new Error('test()/before()/after() must be called inside suite()');
  return current;
}

export function test(title: string, fn: Fn, timeoutMs = defaultTimeoutMs): void {
  currentSuite().cases.push({ title, fn, skipReason: null, timeoutMs });
}

// Thrown by skip(): the test counts as skipped, with its reason, instead of passed or failed.
class Skip extends Error {
  override name = 'Skip';
}

// Skips the running test from inside, for conditions known only at run time (e.g. no UI bridge in runner 1).
export function skip(reason: string): never {
  throw new Skip(reason);
}

// A skipped test still names why, so that the report says which feature it waits for.
test.skip = (title: string, reason: string, _fn?: Fn): void => {
  currentSuite().cases.push({ title, fn: null, skipReason: reason, timeoutMs: 0 });
};

export function before(fn: Fn): void {
  currentSuite().before.push(fn);
}

export function after(fn: Fn): void {
  currentSuite().after.push(fn);
}

async function withTimeout(fn: Fn, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([Promise.resolve().then(fn), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

// Runs every registered suite; `log` receives one line at a time (the host forwards console output line-wise).
export async function runAll(log: (line: string) => void, grep?: RegExp): Promise<RunResult> {
  const result: RunResult = { passed: 0, failed: 0, skipped: 0, failures: [] };
  for (const s of suites) {
    const cases = grep ? s.cases.filter((c) => grep.test(`${s.name} ${c.title}`)) : s.cases;
    if (cases.length === 0) continue;
    log(`suite: ${s.name}`);
    let setupError: unknown = null;
    for (const hook of s.before) {
      try {
        await withTimeout(hook, defaultTimeoutMs * 2, `${s.name} before()`);
      } catch (e) {
        setupError = e;
        break;
      }
    }
    for (const c of cases) {
      const full = `${s.name} > ${c.title}`;
      if (c.skipReason !== null) {
        result.skipped++;
        log(`  - SKIP ${c.title} (${c.skipReason})`);
        continue;
      }
      const t0 = Date.now();
      try {
        if (setupError) throw setupError;
        await withTimeout(c.fn as Fn, c.timeoutMs, full);
        result.passed++;
        log(`  ✔ ${c.title} (${Date.now() - t0} ms)`);
      } catch (e) {
        if (e instanceof Skip) {
          result.skipped++;
          log(`  - SKIP ${c.title} (${e.message})`);
          continue;
        }
        result.failed++;
        result.failures.push(full);
        log(`  ✘ ${c.title} (${Date.now() - t0} ms)`);
        for (const line of describeError(e).split('\n')) log(`      ${line}`);
      }
    }
    for (const hook of s.after) {
      try {
        await withTimeout(hook, defaultTimeoutMs, `${s.name} after()`);
      } catch (e) {
        log(`  after() of ${s.name} failed: ${describeError(e)}`);
      }
    }
  }
  return result;
}
