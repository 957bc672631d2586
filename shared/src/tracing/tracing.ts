import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";
import { parseTraceParent } from "@opentelemetry/core";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/nats-core";
import { HEADERS } from "../protocol/names.js";

export { SpanKind, type Span, type Tracer };

/** A process's tracer; spans go to an OTLP/HTTP endpoint when one is configured, nowhere otherwise. */
export interface Tracing {
  readonly enabled: boolean;
  /** Sends what is buffered and stops; call when the process closes. */
  shutdown(): Promise<void>;
}

/**
 * The process's tracer: the provider startTracing() registered, else OpenTelemetry's no-op one
 * (library code and in-process tests create no-op spans at no cost).
 */
export const tracer = (): Tracer => trace.getTracer("flowmonkey");

/**
 * Tracing for one process. `otlpEndpoint` is the OTLP/HTTP base URL (the standard
 * OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://collector:4318); spans are batched and sent to
 * `<endpoint>/v1/traces` as JSON. Without an endpoint nothing is recorded or sent.
 */
export async function startTracing(options: { serviceName: string; otlpEndpoint?: string | undefined; exportDelayMs?: number }): Promise<Tracing> {
  if (!options.otlpEndpoint) return { enabled: false, shutdown: async () => undefined };
  // Loaded only when tracing is on: the SDK and the exporter add most of a second to every
  // process start (measured 0.9 s on the 2-core VM), which a worker that does not trace should not pay.
  const [{ OTLPTraceExporter }, { resourceFromAttributes }, { BatchSpanProcessor, TracerProvider }] = await Promise.all([
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace"),
  ]);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: `${options.otlpEndpoint.replace(/\/+$/, "")}/v1/traces` }),
        // OTEL_BSP_SCHEDULE_DELAY is the SDKs' standard knob for how often batches go out.
        scheduledDelayMillis: options.exportDelayMs ?? (Number(process.env["OTEL_BSP_SCHEDULE_DELAY"]) || 1000),
      }),
    ],
  });
  // Registered for the process: a binary runs one engine, worker or gateway.
  trace.setGlobalTracerProvider(provider);
  return { enabled: true, shutdown: () => provider.shutdown() };
}

/** The W3C `traceparent` of a span, to carry in a message; undefined for a no-op span. */
export function traceparentOf(span: Span): string | undefined {
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** The context a `traceparent` (from a message header or a task) names as parent; the root when absent or malformed. */
export function contextFromTraceparent(traceparent: string | undefined | null): Context {
  const sc = traceparent ? parseTraceParent(traceparent) : null;
  return sc ? trace.setSpanContext(ROOT_CONTEXT, { ...sc, isRemote: true }) : ROOT_CONTEXT;
}

/** A span whose parent is the message's `traceparent` (a new trace without one). */
export function startSpanFrom(name: string, traceparent: string | undefined | null, attributes: Attributes = {}, kind = SpanKind.CONSUMER): Span {
  return tracer().startSpan(name, { kind, attributes }, contextFromTraceparent(traceparent));
}

/** NATS headers carrying a traceparent to the next process. */
export function traceparentHeaders(traceparent: string): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADERS.traceparent, traceparent);
  return h;
}

/** Ends a span with an error status when `error` is given. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  span.end();
}
