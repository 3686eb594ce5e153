/**
 * `deno task serve:rewards`: runs the reward service of lib/serve/rewards.ts (OpenRLHF's
 * `--remote_rm_url` protocol) until Ctrl-C.
 *
 * Flags:
 *   --host H             interface to bind (default 127.0.0.1; any other address needs a token
 *                        or --allow-unauthenticated)
 *   --port N             default 5000
 *   --token T            require `Authorization: Bearer T` (or set SAFETY_COMPASS_REWARD_TOKEN,
 *                        which keeps the secret out of the process list)
 *   --allow-unauthenticated  serve a non-loopback address without a token (prints a warning)
 *   --body-timeout-s N   time allowed to receive a request body (default 30; 408 after it)
 *   --reward NAME        what POST /get_reward computes (default alphaalign)
 *   --max-body-mb N      request size limit (default 8)
 *   --rf X --ra X        AlphaAlign's r_f, r_a (default 1, 1)
 *   --refusal-string S   AlphaAlign's refusal answer (default \boxed{Sorry, I can't comply})
 *   --judge-url URL --judge-model NAME [--judge-template llama-guard|llama-guard-chat|strongreject]
 *   [--judge-cache DIR]  an LLM judge (OpenAI-compatible) as CRAFT's text judge for craft_text
 *
 * Permissions of the task: `--allow-net=127.0.0.1` (bind and a loopback judge),
 * `--allow-env=SAFETY_COMPASS_REWARD_TOKEN,OPENAI_API_KEY`, no file access. For another
 * host, a remote judge or a judge cache, run `deno run` with those permissions widened, e.g.
 * `deno run --allow-net=0.0.0.0:5000 --allow-env=SAFETY_COMPASS_REWARD_TOKEN
 * lib/cli/serve_rewards.ts --host 0.0.0.0`.
 *
 * @module
 */

import { serveRewards } from "../serve/rewards.ts";
import { builtinRewards } from "../serve/catalog.ts";
import { LlmJudge } from "../judges/llm_judge.ts";
import type { TextJudge } from "../train/rewards.ts";
import { cliArgs, type CliSpec } from "./args.ts";

const TOKEN_ENV = "SAFETY_COMPASS_REWARD_TOKEN";
const CLI: CliSpec = {
  usage:
    "usage: deno task serve:rewards [--host H] [--port N] [--reward NAME] [--max-body-mb N]\n" +
    `  [--token T (or $${TOKEN_ENV})] [--allow-unauthenticated] [--body-timeout-s N]\n` +
    "  [--rf X] [--ra X] [--refusal-string S] [--judge-url URL --judge-model NAME\n" +
    "  [--judge-template T] [--judge-cache DIR]]",
  summary: "Serves the reward functions over HTTP (OpenRLHF's --remote_rm_url protocol) until " +
    `Ctrl-C. Rewards: ${builtinRewards().map((r) => r.name).join(", ")}.`,
  flags: {
    host: {
      type: "string",
      value: "H",
      help: "interface to bind (other than loopback: a token or --allow-unauthenticated)",
      default: "127.0.0.1",
    },
    port: { type: "string", value: "N", help: "port", default: "5000" },
    token: {
      type: "string",
      value: "T",
      help: `require Authorization: Bearer T`,
      default: `$${TOKEN_ENV}`,
    },
    "allow-unauthenticated": {
      type: "boolean",
      help: "serve a non-loopback address without a token",
    },
    "body-timeout-s": {
      type: "string",
      value: "N",
      help: "time to receive a request body (408 after it)",
      default: "30",
    },
    reward: {
      type: "string",
      value: "NAME",
      help: "what POST /get_reward computes",
      default: "alphaalign",
    },
    "max-body-mb": { type: "string", value: "N", help: "request size limit", default: "8" },
    rf: { type: "string", value: "X", help: "AlphaAlign's r_f", default: "1" },
    ra: { type: "string", value: "X", help: "AlphaAlign's r_a", default: "1" },
    "refusal-string": {
      type: "string",
      value: "S",
      help: "AlphaAlign's refusal answer",
      default: "\\boxed{Sorry, I can't comply}",
    },
    "judge-url": {
      type: "string",
      value: "URL",
      help: "an OpenAI-compatible LLM judge as CRAFT's text judge",
    },
    "judge-model": {
      type: "string",
      value: "NAME",
      help: "the judge's model (needed with --judge-url)",
    },
    "judge-template": {
      type: "string",
      value: "T",
      help: "llama-guard, llama-guard-chat or strongreject",
      default: "llama-guard",
    },
    "judge-cache": { type: "string", value: "DIR", help: "cache folder of the judge's verdicts" },
  },
};

function parseFlags(args: string[]): Record<string, string> {
  const { values } = cliArgs(args, CLI);
  return Object.fromEntries(
    Object.entries(values).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]),
  );
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
  const cache = flags["judge-cache"];
  if (cache && Deno.permissions.querySync({ name: "write", path: cache }).state !== "granted") {
    throw new Error(
      `no permission to write the judge cache ${cache} (deno task serve:rewards has no file ` +
        `access); run deno run with --allow-read=${cache} --allow-write=${cache} added`,
    );
  }
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

/** The token from --token, else from the environment (when readable), else undefined. */
function tokenFrom(flags: Record<string, string>): string | undefined {
  if (flags.token !== undefined) return flags.token;
  if (Deno.permissions.querySync({ name: "env", variable: TOKEN_ENV }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(TOKEN_ENV) || undefined;
}

if (import.meta.main) {
  try {
    const flags = parseFlags(Deno.args);
    const host = flags.host ?? "127.0.0.1";
    const port = num(flags, "port", 5000);
    const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
    const net = Deno.permissions.querySync({ name: "net", host: where });
    if (net.state !== "granted") {
      throw new Error(
        `no permission to listen on ${where} (deno task serve:rewards allows ` +
          `127.0.0.1 only); run deno run --allow-net=${where} ` +
          `--allow-env=${TOKEN_ENV} lib/cli/serve_rewards.ts with your flags`,
      );
    }
    const token = tokenFrom(flags);
    const server = serveRewards({
      host,
      port,
      token,
      allowUnauthenticated: flags["allow-unauthenticated"] === "true",
      bodyTimeoutMs: Math.round(num(flags, "body-timeout-s", 30) * 1000),
      defaultReward: flags.reward,
      maxBodyBytes: Math.round(num(flags, "max-body-mb", 8) * 1024 * 1024),
      rf: num(flags, "rf", 1),
      ra: num(flags, "ra", 1),
      refusalString: flags["refusal-string"],
      textJudge: judgeFrom(flags),
      onListen: (url) =>
        console.error(
          `reward service on ${url}${token ? " (bearer token required)" : ""}: POST /get_reward ` +
            `(default ${flags.reward ?? "alphaalign"}), ` +
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
