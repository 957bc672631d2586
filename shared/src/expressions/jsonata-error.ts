/**
 * JSONata throws plain objects ({code, message, position, token, value, stack}), not Errors.
 * Only the code, message and position belong in a step's public error — never a stack trace
 * with server paths.
 */
export function describeJsonataError(thrown: unknown): string {
  if (thrown !== null && typeof thrown === "object" && !(thrown instanceof Error)) {
    const { code, message, position, value } = thrown as { code?: unknown; message?: unknown; position?: unknown; value?: unknown };
    // The two guardrails say which limit, in the words every other limit uses.
    const text =
      code === "D1012"
        ? `exceeded the ${String(value)} ms time limit`
        : code === "D1011"
          ? `exceeded the ${String(value)}-level recursion limit`
          : typeof message === "string" && message.length > 0
            ? message
            : "evaluation failed";
    return `${text}${typeof code === "string" ? ` (${code}${typeof position === "number" ? ` at ${position}` : ""})` : ""}`;
  }
  if (thrown instanceof RangeError) return `hit a limit: ${thrown.message}`;
  return thrown instanceof Error ? thrown.message : String(thrown);
}
