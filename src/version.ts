/** Software version, reported by `atlas --version` and in Hello.agent. Kept equal to package.json (a test checks). */
export const VERSION = "0.1.0";
export const AGENT = `atlas/${VERSION}`;
