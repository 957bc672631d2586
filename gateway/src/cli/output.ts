/**
 * The CLI's only writer to the terminal. Human text by default; with `--json` every result is
 * one JSON document on stdout and errors are `{"error":{code,message}}` on stderr, so scripts
 * never have to parse prose.
 */
import { EXIT } from "@flowmonkey/shared";

export interface Output {
  readonly json: boolean;
  /** A result: `human` for people, `data` for --json. */
  result(human: string | string[], data: unknown): void;
  /** One JSON line (NDJSON) in --json mode, or human text otherwise; for streams of events. */
  event(human: string, data: unknown): void;
  /** Informational text for people; suppressed in --json mode so stdout stays parseable. */
  info(text: string): void;
  /** A table with a header row; columns padded to their widest cell. */
  table(headers: string[], rows: string[][]): string[];
  /** Redraws a block of lines in place on a terminal; elsewhere prints only lines that changed. */
  live(lines: string[]): void;
  /** Ends a live block so later output starts below it. */
  endLive(): void;
  /** One line of a child process, prefixed (the dev mesh). */
  child(prefix: string, line: string): void;
  error(code: string, message: string): void;
  warn(text: string): void;
}

const ANSI = /\x1b\[[0-9;]*m/g;
const visibleLength = (s: string) => s.replace(ANSI, "").length;

export function createOutput(options: { json: boolean; stdout?: NodeJS.WriteStream; stderr?: NodeJS.WriteStream }): Output {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const tty = Boolean(stdout.isTTY);
  const color = tty && !process.env["NO_COLOR"];
  const write = (stream: NodeJS.WriteStream, text: string) => void stream.write(text.endsWith("\n") ? text : `${text}\n`);
  let liveLines: string[] = [];

  const table = (headers: string[], rows: string[][]): string[] => {
    const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ""))));
    const fmt = (cells: string[]) =>
      cells
        .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visibleLength(c))))
        .join("  ")
        .trimEnd();
    const head = color ? `\x1b[1m${fmt(headers)}\x1b[0m` : fmt(headers);
    return [head, ...rows.map(fmt)];
  };

  return {
    json: options.json,
    result(human, data) {
      if (options.json) write(stdout, JSON.stringify(data, null, 2));
      else write(stdout, Array.isArray(human) ? human.join("\n") : human);
    },
    event(human, data) {
      write(stdout, options.json ? JSON.stringify(data) : human);
    },
    info(text) {
      if (!options.json) write(stdout, text);
    },
    table,
    live(lines) {
      if (options.json) return;
      if (tty) {
        // Move up over the previous block and clear to the end of the screen, then redraw.
        // Lines are cut to the terminal width: a wrapped line would break the line count.
        const width = stdout.columns || 120;
        const fitted = lines.map((l) => (visibleLength(l) > width ? `${l.slice(0, width - 1)}…` : l));
        const up = liveLines.length > 0 ? `\x1b[${liveLines.length}A\x1b[0J` : "";
        stdout.write(`${up}${fitted.join("\n")}\n`);
      } else {
        const changed = lines.filter((line, i) => liveLines[i] !== line);
        if (changed.length > 0) write(stdout, changed.join("\n"));
      }
      liveLines = lines;
    },
    endLive() {
      liveLines = [];
    },
    child(prefix, line) {
      write(stdout, `${prefix} ${line}`);
    },
    error(code, message) {
      if (options.json) write(stderr, JSON.stringify({ error: { code, message } }));
      else write(stderr, `${color ? "\x1b[31merror\x1b[0m" : "error"} ${code}: ${message}`);
    },
    warn(text) {
      write(stderr, options.json ? JSON.stringify({ warning: text }) : `warning: ${text}`);
    },
  };
}

/** Exits once stdout and stderr have flushed what was written (pipes may still hold output). */
export function flushAndExit(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
}

/** Colours for the dev mesh's child prefixes; plain text when stdout is not a terminal. */
export function paint(text: string, colorIndex: number): string {
  if (!process.stdout.isTTY || process.env["NO_COLOR"]) return text;
  const colors = [36, 35, 33, 32, 34, 91, 96, 95];
  return `\x1b[${colors[colorIndex % colors.length]}m${text}\x1b[0m`;
}


/** A command's --help: its usage line, a blank line, then what it does; exit 0. */
export function printHelp(out: Output, usage: string, description: string[]): number {
  out.result([`usage: flowmonkey ${usage}`, "", ...description], { usage });
  return EXIT.ok;
}
