/**
 * The one flag parser of the tasks in deno.json, on `node:util`'s `parseArgs` (strict):
 * every task honours `--help` / `-h` (usage and the flags with their defaults, exit 0, nothing
 * else runs) and rejects an unknown flag with the list of valid ones (exit 2).
 *
 * A value-taking flag reads the next word even when it starts with one dash (`--strength -1`);
 * `--flag=value` works too.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One flag of a command. */
export interface FlagSpec {
  /** "string" takes a value; "boolean" is a switch. */
  type: "string" | "boolean";
  /** What it does, one line, for `--help`. */
  help: string;
  /** The default as shown by `--help` (e.g. "150 (--quick: 10)"); absent: none shown. */
  default?: string;
  /** The value's placeholder in `--help`. @default "VALUE" */
  value?: string;
  /** The flag may be given more than once. @default false */
  multiple?: boolean;
}

/** A command's usage line, summary and flags. */
export interface CliSpec {
  /** The usage line, starting "usage: ". */
  usage: string;
  /** A sentence or two printed under the usage line by `--help`. */
  summary?: string;
  /** The flags by name, without the dashes. */
  flags: Record<string, FlagSpec>;
  /** Words that are not flags are allowed (returned as `positionals`). @default false */
  positionals?: boolean;
}

/** The parsed command line. */
export interface ParsedCli {
  /** `--help` or `-h` was given: print {@link cliHelp} and do nothing else. */
  help: boolean;
  /** The flags given, by name: a string, true for a switch, a list for `multiple` flags. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** The words that are not flags. */
  positionals: string[];
}

/** A command line the spec does not accept; the CLI exits with code 2. */
export class CliUsageError extends Error {
  override name = "CliUsageError";
}

/** The `--help` text: usage, summary, and every flag with its default. */
export function cliHelp(spec: CliSpec): string {
  const rows = Object.entries(spec.flags).map(([name, f]) => {
    const left = `--${name}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}`;
    const extra = [f.multiple ? "repeatable" : "", f.default ? `default ${f.default}` : ""]
      .filter(Boolean).join("; ");
    return [left, f.help + (extra ? ` (${extra})` : "")];
  });
  rows.push(["--help, -h", "print this help and exit"]);
  const width = Math.max(...rows.map((r) => r[0].length));
  return [
    spec.usage,
    ...(spec.summary ? ["", spec.summary] : []),
    "",
    "flags:",
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`),
  ].join("\n");
}

function validFlags(spec: CliSpec): string {
  return [...Object.keys(spec.flags).map((f) => `--${f}`), "--help"].join(", ");
}

/**
 * Parses `argv` against `spec`; throws {@link CliUsageError} on an unknown flag (naming the
 * valid ones), a missing value, a value given to a switch, or a stray word.
 *
 * @example
 * ```ts
 * const spec = { usage: "usage: x [--n N] [--quick]", flags: {
 *   n: { type: "string" as const, help: "prompts", default: "60" },
 *   quick: { type: "boolean" as const, help: "CI sizes" },
 * } };
 * const a = parseCli(["--n", "5", "--quick"], spec);
 * console.log(a.values.n, a.values.quick, parseCli(["--help"], spec).help); // "5" true true
 * ```
 */
export function parseCli(argv: readonly string[], spec: CliSpec): ParsedCli {
  const end = argv.indexOf("--");
  const flagWords = end < 0 ? argv : argv.slice(0, end);
  if (flagWords.includes("--help") || flagWords.includes("-h")) {
    return { help: true, values: {}, positionals: [] };
  }
  // `--flag -1`: join a value-taking flag with the next word unless that is a flag itself.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const f = a.startsWith("--") && !a.includes("=") ? spec.flags[a.slice(2)] : undefined;
    const next = argv[i + 1];
    if (
      f?.type === "string" && next !== undefined && next.startsWith("-") && !next.startsWith("--")
    ) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  const options = Object.fromEntries(
    Object.entries(spec.flags).map((
      [k, f],
    ) => [k, { type: f.type, multiple: f.multiple ?? false }]),
  );
  try {
    const r = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: spec.positionals ?? false,
    });
    return {
      help: false,
      values: { ...r.values } as ParsedCli["values"],
      positionals: r.positionals,
    };
  } catch (err) {
    const e = err as Error & { code?: string };
    const word = args.find((a) =>
      a.startsWith("-") && !(a.replace(/^-+/, "").split("=")[0] in spec.flags)
    );
    if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new CliUsageError(
        `unknown flag '${word ?? e.message}'; valid flags: ${validFlags(spec)}\n${spec.usage}`,
      );
    }
    if (e.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      throw new CliUsageError(`unexpected argument: ${e.message}\n${spec.usage}`);
    }
    if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const name = Object.keys(spec.flags).find((k) =>
        e.message.includes(`--${k} `) || e.message.includes(`--${k}'`)
      );
      const f = name === undefined ? undefined : spec.flags[name];
      const why = f?.type === "string"
        ? `--${name} needs a value`
        : f
        ? `--${name} is a switch and takes no value`
        : e.message;
      throw new CliUsageError(`${why}\n${spec.usage}`);
    }
    throw new CliUsageError(`${e.message}\n${spec.usage}`);
  }
}

/**
 * {@link parseCli} for a CLI's `main`: on `--help` prints the help and exits 0; on a bad
 * command line prints the error and exits 2.
 *
 * @example
 * ```ts
 * const a = cliArgs([], { usage: "usage: x [--out DIR]", flags: {
 *   out: { type: "string" as const, help: "output folder", default: "runs" },
 * } });
 * console.log(a.values.out ?? "runs"); // "runs"
 * ```
 */
export function cliArgs(argv: readonly string[], spec: CliSpec): ParsedCli {
  let r: ParsedCli;
  try {
    r = parseCli(argv, spec);
  } catch (err) {
    if (!(err instanceof CliUsageError)) throw err;
    console.error(`error: ${err.message}`);
    Deno.exit(2);
  }
  if (r.help) {
    console.log(cliHelp(spec));
    Deno.exit(0);
  }
  return r;
}

/** Exits 2 with `why` and the usage line: a flag value the CLI rejects after parsing. */
export function usageExit(spec: CliSpec, why: string): never {
  console.error(`error: ${why}\n${spec.usage}`);
  Deno.exit(2);
}
