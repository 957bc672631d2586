import { connect } from "@nats-io/transport-node";

/**
 * Counts what passes through nats-server, by kind of subject, as a `>` subscriber on the same
 * account sees it: each publish once, and each JetStream delivery once more (under its stored
 * subject), replies on `_INBOX`, acks per stream, pull requests per consumer. Core messages
 * delivered to other subscribers (a worker's doorbell) are not seen twice. A census doubles the
 * server's outbound traffic: take it apart from CPU measurements.
 */
export async function startMessageCensus(url: string): Promise<{ stop(): Promise<Map<string, { count: number; bytes: number }>> }> {
  const nc = await connect({ servers: url, name: "bench-census" });
  const kinds = new Map<string, { count: number; bytes: number }>();
  const sub = nc.subscribe(">");
  const counting = (async () => {
    for await (const m of sub) {
      const k = kindOf(m.subject);
      const seen = kinds.get(k) ?? { count: 0, bytes: 0 };
      seen.count++;
      seen.bytes += m.data.length;
      kinds.set(k, seen);
    }
  })();
  await nc.flush();
  return {
    async stop() {
      await nc.flush();
      await nc.drain();
      await counting;
      return kinds;
    },
  };
}

function kindOf(subject: string): string {
  const t = subject.split(".");
  if (t[0] === "_INBOX") return "_INBOX (replies)";
  if (t[0] === "$JS" && t[1] === "ACK") return `$JS.ACK.${t[2]} (acks)`;
  // Pull requests name their consumer: $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
  if (t[0] === "$JS" && t[1] === "API") return t.slice(0, t[3] === "MSG" ? 7 : 4).join(".");
  // fm.tasks.<region>.<handler>.<priority>, fm.results.<region>: keep the region; else the kind.
  return t.slice(0, t[1] === "tasks" || t[1] === "results" ? 3 : 2).join(".");
}
