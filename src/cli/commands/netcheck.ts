import { AtlasError } from "../../errors.ts";
import type { Ctx } from "../context.ts";
import { type AnyCommand, collect } from "../options.ts";
import type { NetcheckReport, NodeProbe } from "../../netcheck/netcheck.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;

/** `atlas netcheck` (src/netcheck/netcheck.ts; docs/operating.md "netcheck"). */
export function registerNetcheck(program: AnyCommand, ctxOf: CtxOf): AnyCommand {
  return program
    .command("netcheck")
    .description(
      "check UDP, the public address and NAT mapping (STUN), relay and bootstrap reachability over UDP and TCP",
    )
    .option("--stun <addr>", "STUN server to ask besides stun.servers (repeatable)", collect, [] as string[])
    .option("--relay <addr>", "relay to try besides network.relays (repeatable)", collect, [] as string[])
    .option(
      "--bootstrap <addr>",
      "bootstrap node to try besides network.bootstrap (repeatable)",
      collect,
      [] as string[],
    )
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      // The flags add to the config's lists through the loader, which checks each entry as it
      // checks the file's (one line, exit 2 for a malformed one), as `atlas daemon --relay` does.
      const config = await ctx.config({
        lists: { "stun.servers": o.stun, "network.relays": o.relay, "network.bootstrap": o.bootstrap },
      });
      const { startNode } = await import("../../daemon/start-node.ts");
      const { netcheck } = await import("../../netcheck/netcheck.ts");
      const { hubUrlFor } = await import("../../operator/hub.ts");
      const node = await startNode(ctx, { listen: false });
      let r: NetcheckReport;
      try {
        r = await netcheck(node, {
          stun: config.stun.servers,
          relays: config.network.relays,
          bootstrap: config.network.bootstrap,
          hub: config.farcaster.verify === "hub" ? hubUrlFor(config.farcaster.hub_url) : null,
        });
      } finally {
        await node.close();
        await node.store.close();
      }
      if (ctx.json) ctx.out.data(r);
      else render(ctx, r);
      if (!r.reachable) {
        throw new AtlasError(
          "ERR_UNREACHABLE",
          r.udp === null
            ? "nothing to check: no STUN server, relay or bootstrap node is configured"
            : "nothing answered: no STUN server, relay or bootstrap node is reachable over UDP or TCP",
        );
      }
    });
}

function nodeLines(list: NodeProbe[]): string[] {
  if (list.length === 0) return ["none configured"];
  return list.map((p) => `${p.target} ${udpText(p)}; ${tcpText(p)}`);
}

function udpText(p: NodeProbe): string {
  return p.ok
    ? `reachable: UDP round trip ${p.udp_rtt_ms!.toFixed(1)} ms (connect and handshake ${
      p.handshake_ms!.toFixed(0)
    } ms)`
    : `unreachable over UDP (${p.error})`;
}

function tcpText(p: NodeProbe): string {
  const t = p.tcp;
  return t.ok
    ? `TCP ${t.address} TLS in ${t.tls_ms!.toFixed(1)} ms`
    : `TCP ${t.address ?? "-"} unreachable (${t.error})`;
}

function hubLine(r: NetcheckReport): string {
  const h = r.hub;
  if (!h) return 'not used (farcaster.verify = "signature")';
  return h.ok
    ? `${h.url} reachable: HTTP ${h.http_status} in ${h.rtt_ms!.toFixed(1)} ms`
    : `${h.url} unreachable (${h.error})`;
}

function render(ctx: Ctx, r: NetcheckReport): void {
  const asked = r.stun.length + r.relays.length + r.bootstrap.length;
  const answered = [...r.stun, ...r.relays, ...r.bootstrap].filter((p) => p.ok).length;
  const rows: [string, string][] = [
    [
      "UDP",
      r.udp === null
        ? "nothing to ask"
        : r.udp
        ? `yes (${answered} of ${asked} answered)`
        : `no: none of ${asked} answered`,
    ],
    [
      "Public",
      r.public_address
        ? `${r.public_address}${r.behind_nat === false ? " (this host's own address: no NAT)" : " (behind a NAT)"}`
        : "unknown",
    ],
    ["Mapping", `${r.mapping}: ${r.mapping_reason}`],
  ];
  const many = (label: string, lines: string[]) => lines.forEach((l, i) => rows.push([i === 0 ? label : "", l]));
  many(
    "STUN",
    r.stun.length === 0
      ? ["none configured"]
      : r.stun.map((s) =>
        s.ok
          ? `${s.server} saw ${s.public_address} in ${s.rtt_ms!.toFixed(1)} ms`
          : `${s.server} no answer (${s.error})`
      ),
  );
  many("Relays", nodeLines(r.relays));
  many("Bootstrap", nodeLines(r.bootstrap));
  rows.push(["Hub", hubLine(r)]);
  rows.push(["Took", `${r.duration_ms} ms`]);
  ctx.out.fields(rows);
}
