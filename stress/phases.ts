/** Every phase of the adversarial suite, in the order they run. */
import type { Phase } from "./harness.ts";
import { memoryPhase } from "./memory.ts";

export const PHASES: Phase[] = [memoryPhase];
