/**
 * Base of the project's named errors. `name` says which part failed and `kind` which way, so the CLI can print
 * `<name> <kind>: message` and callers (and the IPC boundary) can branch on a stable string rather than on the text.
 */
export class KindError<K extends string> extends Error {
  constructor(
    readonly kind: K,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
