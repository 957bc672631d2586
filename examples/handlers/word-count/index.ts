// A sandboxed handler: bundled by `flowmonkey handler build`, run in a sandbox process.
// `ctx` is the plumbing API (see docs/SANDBOX.md); `fetch` goes through the worker's SSRF guard.
import { countWords } from "./count";

interface Ctx {
  input: { text?: string; url?: string };
  progress: { update(percent: number, message?: string): Promise<void> };
}

export default {
  async execute(ctx: Ctx) {
    const text = ctx.input.url ? await (await fetch(ctx.input.url)).text() : (ctx.input.text ?? "");
    await ctx.progress.update(50, "counting");
    const top = countWords(text).slice(0, 10);
    return { words: top.reduce((n, [, c]) => n + c, 0), top };
  },
};
