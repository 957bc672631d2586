import { FmError } from "@flowmonkey/shared";
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";

/**
 * Addresses a sandboxed handler may never reach: loopback, private, carrier-grade NAT,
 * link-local (169.254.169.254, the cloud metadata service), multicast and reserved ranges, and
 * their IPv6 counterparts including NAT64. Node's own BlockList does the matching; it checks an
 * IPv4-mapped IPv6 address (::ffff:127.0.0.1) against the IPv4 rules itself, which is also why
 * ::ffff:0:0/96 must not be listed (every IPv4 address would match it).
 */
function deniedRanges(): BlockList {
  const list = new BlockList();
  const v4: Array<[string, number]> = [
    ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
    ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.88.99.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["198.51.100.0", 24],
    ["203.0.113.0", 24], ["224.0.0.0", 4], ["240.0.0.0", 4],
  ];
  for (const [net, bits] of v4) list.addSubnet(net, bits, "ipv4");
  const v6: Array<[string, number]> = [
    ["::", 128], ["::1", 128], ["64:ff9b::", 96], ["64:ff9b:1::", 48], ["100::", 64], ["2001:db8::", 32],
    ["fc00::", 7], ["fe80::", 10], ["fec0::", 10], ["ff00::", 8],
  ];
  for (const [net, bits] of v6) list.addSubnet(net, bits, "ipv6");
  return list;
}

const DENIED = deniedRanges();

export interface NetworkPolicy {
  /** CIDRs let through although they are in a denied range (an operator's explicit choice; tests). */
  allow?: BlockList;
  /** Largest response body handed back to the sandbox. @default 1 MiB */
  maxResponseBytes?: number;
  /** How long one fetch may take, connection to the body's last byte. @default 30000 */
  timeoutMs?: number;
  /** Fetches (sockets) one task may have open at once; one more is refused with NETWORK_DENIED. @default 8 */
  maxInFlight?: number;
}

export const FETCH_DEFAULTS = { maxResponseBytes: 1024 * 1024, timeoutMs: 30_000, maxInFlight: 8 } as const;

export function isDeniedAddress(address: string, policy: NetworkPolicy = {}): boolean {
  const family = isIP(address) === 6 ? "ipv6" : "ipv4";
  if (policy.allow?.check(address, family)) return false;
  return DENIED.check(address, family);
}

const denied = (host: string, address: string) =>
  new FmError("NETWORK_DENIED", `fetch to ${host} refused: it resolves to ${address}, a loopback, private, link-local or reserved address`);

/** A DNS lookup that refuses denied addresses: the check is made on the address the socket then connects to. */
function guardedLookup(policy: NetworkPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, family: options.family ?? 0 }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, "", 4);
      const bad = addresses.find((a) => isDeniedAddress(a.address, policy));
      if (bad || addresses.length === 0) return callback(bad ? denied(hostname, bad.address) : new Error(`${hostname} has no address`), "", 4);
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

export interface SandboxFetchRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string | undefined;
}

export interface SandboxFetchResponse {
  status: number;
  statusText: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * `fetch` for sandboxed handlers, made by the worker: http(s) only, no redirects followed (a
 * handler that wants one fetches the Location, which is checked again), every address checked
 * after DNS resolution, and the body bounded.
 */
export async function guardedFetch(request: SandboxFetchRequest, signal: AbortSignal, policy: NetworkPolicy = {}): Promise<SandboxFetchResponse> {
  signal.throwIfAborted();
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    throw new FmError("INVALID_INPUT", `fetch: ${JSON.stringify(request.url.slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new FmError("NETWORK_DENIED", `fetch: only http and https are allowed, not ${url.protocol}`);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  // An address literal never goes through DNS: check it here.
  if (isIP(host) && isDeniedAddress(host, policy)) throw denied(host, host);
  const maxBytes = policy.maxResponseBytes ?? FETCH_DEFAULTS.maxResponseBytes;
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    // No agent: a socket of its own, closed after the response (the keep-alive pool would hold
    // sockets past the task), and destroyed when `signal` aborts, whatever stage the fetch is at.
    const req = client.request(url, { method: request.method.toUpperCase(), headers: request.headers, lookup: guardedLookup(policy), agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size > maxBytes) {
          req.destroy(new FmError("PAYLOAD_TOO_LARGE", `fetch ${url.host}: response body over ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on("error", reject);
      res.on("end", () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", url: url.href, headers, body: Buffer.concat(chunks).toString("utf8") });
      });
    });
    req.on("error", reject);
    const onAbort = () => {
      const reason: unknown = signal.reason;
      const error = reason instanceof FmError ? reason : new FmError("CANCELLED", `fetch ${url.host}: aborted`);
      req.destroy(error);
      reject(error);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    req.on("close", () => signal.removeEventListener("abort", onAbort));
    if (request.body !== undefined) req.write(request.body);
    req.end();
  });
}

/**
 * One task's fetches: each has a timeout, at most `maxInFlight` are open at once (one more is
 * refused at once, never queued), and close() aborts every one still open — the task is over.
 * (300 fetches to a slow server once held their sockets for seconds after their task ended.)
 */
export class FetchLimiter {
  readonly #ended = new AbortController();
  readonly #policy: NetworkPolicy;
  readonly #task: AbortSignal;
  #inFlight = 0;

  constructor(task: AbortSignal, policy: NetworkPolicy = {}) {
    this.#task = task;
    this.#policy = policy;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  async fetch(request: SandboxFetchRequest): Promise<SandboxFetchResponse> {
    const max = this.#policy.maxInFlight ?? FETCH_DEFAULTS.maxInFlight;
    if (this.#ended.signal.aborted) throw new FmError("CANCELLED", "fetch: the task is over");
    if (this.#inFlight >= max) throw new FmError("NETWORK_DENIED", `fetch refused: the task already has ${max} fetches in flight (its limit)`);
    const timeoutMs = this.#policy.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new FmError("TIMEOUT", `fetch ${hostOf(request.url)}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
    this.#inFlight++;
    try {
      return await guardedFetch(request, AbortSignal.any([this.#task, this.#ended.signal, timeout.signal]), this.#policy);
    } finally {
      clearTimeout(timer);
      this.#inFlight--;
    }
  }

  /** The task ended: every fetch still open is aborted and its socket destroyed. */
  close(): void {
    this.#ended.abort(new FmError("CANCELLED", "fetch aborted: its task ended"));
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(not a URL)";
  }
}
