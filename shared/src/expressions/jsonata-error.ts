/**
 * JSONata throws plain objects ({code, message, position, token, value, stack}), not Errors.
 * Only the code, message and position belong in a step's public error — never a stack trace
 * with server paths.
 */
export function describeJsonataError(thrown: unknown): string {
  if (thrown !== null && typeof thrown === "object" && !(thrown instanceof Error)) {
    const { code, message, position, value } = thrown as { code?: unknown; message?: unknown; position?: unknown; value?: unknown };
    const text =
      code === "D1012"
        ? `exceeded the ${String(value)} ms time limit`
        : typeof message === "string" && message.length > 0
          ? message
          : code === "D1011"
            ? `nested deeper than ${String(value)} levels`
            : "evaluation failed";
    return `${text}${typeof code === "string" ? ` (${code}${typeof position === "number" ? ` at ${position}` : ""})` : ""}`;
  }
  if (thrown instanceof RangeError) return `ran out of room: ${thrown.message}`;
  return thrown instanceof Error ? thrown.message : String(thrown);
}
