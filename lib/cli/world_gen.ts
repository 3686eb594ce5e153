/**
 * CLI: generates SafetyWorld (DESIGN.md, "SafetyWorld") and writes its JSONL files plus the
 * word-level `tokenizer.json` / `tokenizer_config.json`, then prints counts per file, kind
 * and split, the vocabulary size and the longest example in tokens.
 *
 * ```
 * deno run --allow-read --allow-write lib/cli/world_gen.ts [--seed 0] [--out datasets/safetyworld]
 *   [--full] [--prompts N] [--sft N] [--align N] [--recovery N] [--traces N] [--traits N]
 * ```
 *
 * Without size flags it writes the committed sizes (`COMMITTED_SIZES`, a prefix of the
 * default-size world, ~6 MB); `--full` writes the default sizes (`DEFAULT_SIZES`). The
 * tokenizer's vocabulary always comes from the default-size world of the seed, so it equals
 * the one `buildWorldTokenizer(generateWorld({ seed }))` gives (what trainers use).
 *
 * @module
 */

import { join } from "node:path";
import { writeJsonAtomic } from "../io/atomic.ts";
import { cliArgs, type CliSpec, CliUsageError, parseCli, usageExit } from "./args.ts";
import {
  COMMITTED_SIZES,
  DEFAULT_SIZES,
  generateWorld,
  WORLD_FILES,
  type WorldSizes,
  writeWorld,
} from "../data/safetyworld/generate.ts";
import {
  buildWorldTokenizer,
  worldLength,
  worldVocabulary,
} from "../data/safetyworld/tokenizer.ts";
import type { World } from "../data/safetyworld/plan.ts";

/** Parsed command line. */
export interface WorldGenArgs {
  /** Seed. @default 0 */
  seed: number;
  /** Output folder. @default "datasets/safetyworld" */
  out: string;
  /** Row counts per file. @default COMMITTED_SIZES (DEFAULT_SIZES with --full) */
  sizes: WorldSizes;
}

const CLI: CliSpec = {
  usage: "usage: deno task world:gen [--seed 0] [--out datasets/safetyworld] [--full] " +
    `[--${WORLD_FILES.join(" N] [--")} N]`,
  summary: "Generates SafetyWorld: its JSONL files and the word-level tokenizer.",
  flags: {
    seed: { type: "string", value: "N", help: "world seed", default: "0" },
    out: { type: "string", value: "DIR", help: "output folder", default: "datasets/safetyworld" },
    full: {
      type: "boolean",
      help: "the default sizes (DEFAULT_SIZES) instead of the committed ones",
    },
    ...Object.fromEntries(WORLD_FILES.map((f) => [f, {
      type: "string" as const,
      value: "N",
      help: `rows of ${f}.jsonl`,
      default: `${COMMITTED_SIZES[f]} (--full: ${DEFAULT_SIZES[f]})`,
    }])),
  },
};

/** Parses the command line; errors name the flag and the expected form. */
export function parseWorldGenArgs(argv: readonly string[]): WorldGenArgs {
  const { values: v } = parseCli(argv, CLI);
  const int = (flag: string): number | undefined => {
    const value = v[flag] as string | undefined;
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) {
      throw new CliUsageError(`--${flag} expects a non-negative integer, got "${value}"`);
    }
    return n;
  };
  const given: Partial<WorldSizes> = {};
  for (const f of WORLD_FILES) {
    const n = int(f);
    if (n !== undefined) given[f] = n;
  }
  return {
    seed: int("seed") ?? 0,
    out: (v.out as string | undefined) ?? "datasets/safetyworld",
    sizes: { ...(v.full === true ? DEFAULT_SIZES : COMMITTED_SIZES), ...given },
  };
}

/** The longest example of a world in tokens (`<bos> user : P bot : R <eos>`), and its file. */
export function maxWorldLength(world: World): { tokens: number; file: string } {
  let best = { tokens: 0, file: "" };
  const see = (file: string, p: string, r?: string) => {
    const n = worldLength(p, r);
    if (n > best.tokens) best = { tokens: n, file };
  };
  for (const r of world.prompts) see("prompts", r.prompt);
  for (const f of ["sft", "align", "recovery"] as const) {
    for (const r of world[f]) see(f, r.prompt, r.response);
  }
  for (const r of world.traces) see("traces", r.prompt, r.trace);
  for (const r of world.traits) for (const x of [r.good, r.bad]) see("traits", r.prompt, x);
  return best;
}

function counts(rows: readonly { kind: string; split: string }[]): string {
  const m = new Map<string, number>();
  for (const r of rows) m.set(`${r.kind}/${r.split}`, (m.get(`${r.kind}/${r.split}`) ?? 0) + 1);
  return [...m.entries()].sort().map(([k, v]) => `${k}=${v}`).join(" ");
}

if (import.meta.main) {
  cliArgs(Deno.args, CLI); // --help, unknown flags
  let args: WorldGenArgs;
  try {
    args = parseWorldGenArgs(Deno.args);
  } catch (err) {
    usageExit(CLI, (err as Error).message);
  }
  const world = generateWorld({ seed: args.seed, sizes: args.sizes });
  await writeWorld(args.out, world);
  const full = generateWorld({ seed: args.seed });
  const { tokenizerJson, tokenizerConfig } = buildWorldTokenizer(full);
  await writeJsonAtomic(join(args.out, "tokenizer.json"), tokenizerJson);
  await writeJsonAtomic(join(args.out, "tokenizer_config.json"), tokenizerConfig);
  for (const f of WORLD_FILES) {
    console.log(`${f}.jsonl: ${world[f].length} rows  ${counts(world[f])}`);
  }
  const max = maxWorldLength(world);
  console.log(`vocabulary: ${worldVocabulary(full).length} tokens`);
  console.log(
    `max length: ${max.tokens} tokens (${max.file}); wrote ${args.out} (seed ${args.seed})`,
  );
}
