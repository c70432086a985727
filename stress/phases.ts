/** Every phase of the adversarial suite, in the order they run. */
import { bootstrapAbusePhase } from "./bootstrap-abuse.ts";
import { fuzzPhase } from "./fuzz.ts";
import { floodsPhase } from "./floods.ts";
import { garbagePhase } from "./garbage.ts";
import { handshakePhase } from "./handshake.ts";
import type { Phase } from "./harness.ts";
import { impairmentPhase } from "./impairment.ts";
import { memoryPhase } from "./memory.ts";
import { relayAbusePhase } from "./relay-abuse.ts";
import { scalePhase } from "./scale.ts";

export const PHASES: Phase[] = [
  memoryPhase,
  fuzzPhase,
  handshakePhase,
  garbagePhase,
  floodsPhase,
  relayAbusePhase,
  bootstrapAbusePhase,
  impairmentPhase,
  scalePhase,
];
