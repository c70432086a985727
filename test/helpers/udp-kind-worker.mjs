// Runs in a worker thread (test/udp-socket.test.ts): which socket does a node bind there?
import { register } from "tsx/esm/api";
import { parentPort } from "node:worker_threads";

register();
const { bindUdp } = await import("../../src/transport/udp/bind.ts");
const s = await bindUdp({ type: "udp4", host: "127.0.0.1", port: 0, bufferBytes: 1 << 20 });
parentPort.postMessage(s.kind);
await s.close();
