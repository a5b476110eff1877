// Owns the CLI's exit codes: one source of truth for every command.
export const ExitCode = {
  /** The command did what was asked (warnings allowed). */
  Ok: 0,
  /** The input has errors (policy errors, failing tests, unformatted files). */
  Failure: 1,
  /** Usage or I/O errors: bad flags, unreadable paths. */
  Usage: 2,
  /** A bug in Portcullis itself (never a user's fault). */
  Internal: 70,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
