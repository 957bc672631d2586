/**
 * Newline-framed messages from a sandbox, with a bound on what is held. Node's own IPC channel
 * buffers a message until its newline with no limit, so a sandbox that owns its process could
 * write one endless line into it until the worker ran out of memory; this reader holds at most
 * `maxLineBytes` of an unfinished line and says so past it. Pure: the caller kills the sandbox.
 */
export class LineReader {
  readonly #maxLineBytes: number;
  #partial: Buffer[] = [];
  #partialBytes = 0;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /**
   * Takes a chunk; calls `line` with each complete line (without its newline, UTF-8 decoded) and
   * returns false as soon as a line is longer than the bound (then nothing more is read) or
   * `line` returns false.
   */
  push(chunk: Buffer, line: (text: string, bytes: number) => boolean): boolean {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      if (newline < 0) break;
      const bytes = this.#partialBytes + (newline - start);
      if (bytes > this.#maxLineBytes) return false;
      const tail = chunk.subarray(start, newline);
      const text = this.#partialBytes === 0 ? tail.toString("utf8") : Buffer.concat([...this.#partial, tail]).toString("utf8");
      this.#partial = [];
      this.#partialBytes = 0;
      if (!line(text, bytes)) return false;
      start = newline + 1;
    }
    if (start < chunk.length) {
      this.#partialBytes += chunk.length - start;
      if (this.#partialBytes > this.#maxLineBytes) return false;
      // A copy: a subarray would keep the whole chunk alive for a few bytes.
      this.#partial.push(Buffer.from(chunk.subarray(start)));
    }
    return true;
  }

  /** Bytes of the unfinished line held. */
  get held(): number {
    return this.#partialBytes;
  }
}
