// Owns the name of the kernel policy instance that `kernel` commands use by default (apart from
// cli/kernel.ts, so that the CLI can offer it without loading the kernel modules).

/** The `--name` of `kernel load/status/events/unload` and `exec` when none is given. */
export const DEFAULT_INSTANCE = "default";
