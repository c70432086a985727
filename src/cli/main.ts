import { VERSION } from "../version.ts";

// Placeholder until the CLI lands; replaced by the commander program.
export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--version")) {
    process.stdout.write(`atlas ${VERSION}\n`);
    return 0;
  }
  process.stdout.write("atlas: usage: atlas <command>\n");
  return 0;
}
