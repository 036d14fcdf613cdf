// One error type for everything that can be wrong with a checkpoint on disk, so
// callers (CLI, server) can print one line naming the file and tensor at fault.

export class CheckpointError extends Error {
  /** Exit code the CLI uses for a bad or missing checkpoint (src/cli/chat/errors.ts ExitCode.model). */
  readonly exitCode = 4;
  constructor(
    message: string,
    /** The file at fault (path as given), when one is. */
    readonly file?: string,
    /** The tensor at fault, when one is. */
    readonly tensor?: string,
  ) {
    super(
      [file !== undefined ? `${file}` : '', tensor !== undefined ? `tensor '${tensor}'` : '', message]
        .filter((s) => s !== '')
        .join(': '),
    );
    this.name = 'CheckpointError';
  }
}
