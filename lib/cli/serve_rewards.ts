/**
 * `deno task serve:rewards`: runs the reward service of lib/serve/rewards.ts (OpenRLHF's
 * `--remote_rm_url` protocol) until Ctrl-C.
 *
 * Flags:
 *   --host H             interface to bind (default 127.0.0.1; 0.0.0.0 exposes it)
 *   --port N             default 5000
 *   --reward NAME        what POST /get_reward computes (default alphaalign)
 *   --max-body-mb N      request size limit (default 8)
 *   --rf X --ra X        AlphaAlign's r_f, r_a (default 1, 1)
 *   --refusal-string S   AlphaAlign's refusal answer (default \boxed{Sorry, I can't comply})
 *   --judge-url URL --judge-model NAME [--judge-template llama-guard|llama-guard-chat|strongreject]
 *   [--judge-cache DIR]  an LLM judge (OpenAI-compatible) as CRAFT's text judge for craft_text
 *
 * @module
 */

import { serveRewards } from "../serve/rewards.ts";
import { builtinRewards } from "../serve/catalog.ts";
import { LlmJudge } from "../judges/llm_judge.ts";
import type { TextJudge } from "../train/rewards.ts";

const FLAGS = [
  "host",
  "port",
  "reward",
  "max-body-mb",
  "rf",
  "ra",
  "refusal-string",
  "judge-url",
  "judge-model",
  "judge-template",
  "judge-cache",
];

function parseFlags(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      console.log(
        "usage: deno task serve:rewards [--host H] [--port N] [--reward NAME] [--max-body-mb N]\n" +
          "  [--rf X] [--ra X] [--refusal-string S] [--judge-url URL --judge-model NAME\n" +
          "  [--judge-template T] [--judge-cache DIR]]\n" +
          `rewards: ${builtinRewards().map((r) => r.name).join(", ")}`,
      );
      Deno.exit(0);
    }
    const name = a.replace(/^--/, "");
    if (!a.startsWith("--") || !FLAGS.includes(name)) {
      throw new Error(`Unknown argument '${a}'; flags: ${FLAGS.map((f) => `--${f}`).join(" ")}`);
    }
    if (i + 1 >= args.length) throw new Error(`Flag ${a} needs a value`);
    out[name] = args[++i];
  }
  return out;
}

function num(flags: Record<string, string>, name: string, def: number): number {
  if (flags[name] === undefined) return def;
  const v = Number(flags[name]);
  if (!Number.isFinite(v)) throw new Error(`--${name} must be a number, got '${flags[name]}'`);
  return v;
}

function judgeFrom(flags: Record<string, string>): TextJudge | undefined {
  if (!flags["judge-url"]) return undefined;
  if (!flags["judge-model"]) throw new Error("--judge-url needs --judge-model");
  const template = (flags["judge-template"] ?? "llama-guard") as
    | "llama-guard"
    | "llama-guard-chat"
    | "strongreject";
  const judge = new LlmJudge({
    baseUrl: flags["judge-url"],
    model: flags["judge-model"],
    template,
    cacheDir: flags["judge-cache"],
  });
  // p_text_safe: a StrongREJECT score is a harmfulness score, so it is flipped.
  return async (row, text) => {
    const v = await judge.judge({ prompt: row.prompt, response: text });
    return v.score !== undefined ? 1 - v.score : v.unsafe ? 0 : 1;
  };
}

if (import.meta.main) {
  try {
    const flags = parseFlags(Deno.args);
    const server = serveRewards({
      host: flags.host,
      port: num(flags, "port", 5000),
      defaultReward: flags.reward,
      maxBodyBytes: Math.round(num(flags, "max-body-mb", 8) * 1024 * 1024),
      rf: num(flags, "rf", 1),
      ra: num(flags, "ra", 1),
      refusalString: flags["refusal-string"],
      textJudge: judgeFrom(flags),
      onListen: (url) =>
        console.error(
          `reward service on ${url}: POST /get_reward (default ${flags.reward ?? "alphaalign"}), ` +
            `POST /reward/<name>, GET /rewards, GET /health`,
        ),
    });
    const stop = () => server.shutdown();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    await server.finished;
  } catch (err) {
    console.error(`serve:rewards: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
