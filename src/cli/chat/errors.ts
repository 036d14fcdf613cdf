// User-facing CLI errors: one line on stderr, a meaningful exit code, never a stack trace.
// main.ts prints `dsv4: <message>` and exits with `exitCode` when the error carries one.

export const ExitCode = {
  /** The request or generation failed at run time. */
  failure: 1,
  /** Bad arguments or a bad command-line value. */
  usage: 2,
  /** The server could not be reached or answered with an error. */
  server: 3,
  /** The model directory is missing or not a checkpoint. */
  model: 4,
  /** Stopped by Ctrl-C (128 + SIGINT). */
  interrupted: 130,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.failure,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The one-line text of any thrown value (first line only, so no stack or multi-line dumps). */
export function errorLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}
