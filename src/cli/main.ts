import { commands } from './commands';
import { resolveCommand } from './command';

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length), 4);
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return ['usage: mora <command> [flags]', '', 'commands:', ...lines, '', "Run 'mora <command> --help' for its flags."].join('\n');
}

/** Runs the CLI and returns the exit code; errors become one line on stderr and exit code 2, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name === undefined ? 2 : 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`mora: unknown command '${name}' (see 'mora --help')\n`);
    return 2;
  }
  const command = await resolveCommand(entry);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.usage.trimEnd() + '\n');
    return 0;
  }
  try {
    return (await command.run(rest)) ?? 0;
  } catch (err) {
    const e = err as Error & { kind?: string };
    // By name, not instanceof: the model commands run from their own bundle, with their own copy of the class.
    const label = e.name === 'UsageError' ? 'usage' : e.kind ? `${e.name} ${e.kind}` : e.name || 'Error';
    process.stderr.write(`mora ${name}: ${label}: ${e.message}\n`);
    if (process.env.MORA_DEBUG) process.stderr.write(`${e.stack}\n`);
    return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`mora: ${(err as Error).message}\n`);
      process.exitCode = 2;
    },
  );
}
