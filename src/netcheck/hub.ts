/**
 * The Farcaster hub leg of `atlas netcheck`: is the hub this node would ask about operator
 * bindings (docs/protocol.md#operator-binding) reachable over HTTP(S), and how fast. Any HTTP
 * answer counts as reachable: the question is the path, not the hub's opinion of a request.
 * Web APIs only (fetch, AbortSignal), so it runs under Node and Deno.
 */

export interface HubProbe {
  url: string;
  ok: boolean;
  /** The HTTP status of the answer to `GET /v1/info`, when there was one. */
  http_status: number | null;
  rtt_ms: number | null;
  error: string | null;
}

/** `GET <url>/v1/info` (served by Snapchain nodes and Hubble hubs), within `deadline` (ms since the epoch). */
export async function probeHub(url: string, deadline: number): Promise<HubProbe> {
  const t0 = performance.now();
  const left = Math.max(1, deadline - Date.now());
  try {
    const res = await fetch(new URL("/v1/info", url), { signal: AbortSignal.timeout(left) });
    await res.body?.cancel();
    const rtt = Math.round((performance.now() - t0) * 100) / 100;
    return { url, ok: true, http_status: res.status, rtt_ms: rtt, error: null };
  } catch (e) {
    return { url, ok: false, http_status: null, rtt_ms: null, error: why(e, left) };
  }
}

function why(e: unknown, budgetMs: number): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === "TimeoutError" || err?.name === "AbortError") return `no answer within ${budgetMs} ms`;
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}
