/** A minimal text/event-stream reader for tests: one `{event, data}` per `next()`, with a deadline. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

export interface SseReader {
  next(timeoutMs?: number): Promise<SseEvent>;
}

export function readSse(res: Response): SseReader {
  if (!res.body) throw new Error("response has no body");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const queue: SseEvent[] = [];

  const parse = (block: string): SseEvent | undefined => {
    let event = "message";
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // comment (keep-alive)
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("id:")) id = line.slice(3).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    return data.length > 0 ? { event, data: data.join("\n"), ...(id === undefined ? {} : { id }) } : undefined;
  };

  return {
    async next(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no SSE event within ${timeoutMs} ms; buffered: ${JSON.stringify(buffer)}`)), Math.max(1, deadline - Date.now()));
        });
        const chunk = await Promise.race([reader.read(), timeout]).finally(() => clearTimeout(timer));
        if (chunk.done) throw new Error("SSE stream ended");
        buffer += chunk.value;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) queue.push(event);
        }
      }
      return queue.shift()!;
    },
  };
}
