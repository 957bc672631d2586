/**
 * Every `flowmonkey` command, from its own help list: `--help` prints its usage and exits 0; an
 * unknown flag is a usage error — exit 2, a usage line, never a stack trace — before anything
 * connects (the NATS URL points at a closed port).
 */
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.js";

// A port nothing listens on: a command that tried to connect would fail differently (exit 1).
const target = { natsUrl: "nats://127.0.0.1:1", prefix: "fm" };

describe("every CLI command", () => {
  it("--help exits 0 with its usage; an unknown flag exits 2 with a usage line and no stack trace", async () => {
    const list = await runCli(target, "--help", "--json");
    expect(list.code).toBe(0);
    const usages = (JSON.parse(list.stdout) as { commands: string[] }).commands;
    expect(usages.length).toBeGreaterThan(20);
    const words = usages.map((u) => u.split(" ").filter((w) => /^[a-z][a-z-]*$/.test(w)).slice(0, 2));
    const commands = words.map((w, i) => (w.length === 2 && usages[i]!.startsWith(`${w[0]} ${w[1]}`) ? w : w.slice(0, 1)));
    const problems: string[] = [];
    for (const command of commands) {
      const help = await runCli(target, ...command, "--help");
      if (help.code !== 0 || !/usage/i.test(help.stdout + help.stderr)) problems.push(`${command.join(" ")} --help: exit ${help.code}`);
      const bad = await runCli(target, ...command, "--no-such-flag");
      if (bad.code !== 2) problems.push(`${command.join(" ")} --no-such-flag: exit ${bad.code}`);
      if (/\n\s+at .+\(.*:\d+:\d+\)/.test(bad.stderr)) problems.push(`${command.join(" ")} --no-such-flag: a stack trace`);
      if (bad.code === 2 && !/usage/i.test(bad.stderr)) problems.push(`${command.join(" ")} --no-such-flag: no usage line`);
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
