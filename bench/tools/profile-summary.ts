/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time per function, highest first,
 * plus the same grouped by file. Used to name the hot spots in bench/RESULTS.md.
 *
 *   BENCH_ONLY=bulk BENCH_CPU_PROF=/tmp/prof node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/run.ts
 *   node --import tsx bench/tools/profile-summary.ts /tmp/prof/<file>.cpuprofile [top=30]
 */
import { readFileSync } from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const file = process.argv[2];
if (!file) {
  process.stderr.write("usage: profile-summary.ts FILE.cpuprofile [top]\n");
  process.exit(2);
}
const top = Number(process.argv[3] ?? 30);
const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>(); // node id → µs
for (let i = 0; i < p.samples.length; i++) {
  const id = p.samples[i]!;
  const dt = p.timeDeltas[i + 1] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
}

const short = (url: string) =>
  url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "nm:").replace(/^.*\/work\/main\//, "");
const label = (cf: CallFrame) =>
  `${cf.functionName || "(anonymous)"} ${cf.url ? `${short(cf.url)}:${cf.lineNumber + 1}` : "(native)"}`;

const fn = new Map<string, number>();
const files = new Map<string, number>();
let total = 0;
for (const [id, us] of self) {
  const n = byId.get(id)!;
  total += us;
  const l = label(n.callFrame);
  fn.set(l, (fn.get(l) ?? 0) + us);
  // native functions (quiche binding, socket sends) are charged to the JS file that called them
  let at: ProfileNode | undefined = n;
  while (at && !at.callFrame.url && parent.has(at.id) && !at.callFrame.functionName.startsWith("(")) {
    at = byId.get(parent.get(at.id)!);
  }
  const f = at?.callFrame.url ? short(at.callFrame.url) : n.callFrame.functionName || "(native)";
  files.set(f, (files.get(f) ?? 0) + us);
}

const pct = (us: number) => ((100 * us) / total).toFixed(1).padStart(5) + "%";
const msS = (us: number) => (us / 1000).toFixed(0).padStart(6) + " ms";
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`);
console.log(`\nself time by function (top ${top}):`);
for (const [l, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)} ${msS(us)}  ${l}`);
console.log(`\nself time by file (native calls charged to their JS caller's file):`);
for (const [f, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`${pct(us)} ${msS(us)}  ${f}`);
