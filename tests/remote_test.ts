/**
 * Tests of remote models over an OpenAI-compatible API, against a fake server this file
 * starts on 127.0.0.1: it continues the last number of the prompt ("w3" -> " w4 w5 w6"),
 * counts and records requests, and fails or stalls on demand. Covered: the generate
 * contract on both endpoints, the HTTP core (retries, Retry-After, timeouts, concurrency
 * limit, disk cache), prefill in the raw prompt, injection as two calls, early failure of
 * hidden-state calls, and the resumable journal.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  generateResumable,
  loadRemoteModel,
  parseRemoteSource,
  RemoteGenerateError,
  type RemoteModel,
  type RemoteModelOptions,
  requireCapability,
  ResumableGenerationError,
} from "../lib/model/remote.ts";
import {
  backoffDelay,
  type HttpError,
  parseRetryAfter,
  postJson,
  Semaphore,
} from "../lib/net/http.ts";
import { apiRoot } from "../lib/net/openai.ts";
import { makeRng } from "../lib/data/rng.ts";

/**
 * One scripted reply: an error status (optionally with Retry-After), a delay before answering,
 * a raw 200 body (malformed replies), or a 200 whose body stalls half-way for `stallMs`.
 */
type Action =
  | { status: number; retryAfter?: string }
  | { delayMs: number }
  | { reply: string }
  | { stallMs: number };

interface Fake {
  url: string;
  requests: { path: string; body: Record<string, unknown>; auth: string | null }[];
  script: Action[];
  /** Consulted when the script is empty: the action for this prompt, or undefined (answer). */
  chaos?: (prompt: string) => Action | undefined;
  delayMs: number;
  inFlight: number;
  maxInFlight: number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Continues the last number of `prompt`: " w(k+1) w(k+2) ...", only 2 words after "STOP". */
function continuation(prompt: string, max: number): { words: string[]; finish: string } {
  const nums = prompt.match(/\d+/g) ?? ["0"];
  const last = Number(nums[nums.length - 1]);
  const n = prompt.includes("STOP") ? Math.min(2, max) : max;
  const words = Array.from({ length: n }, (_, k) => `w${(last + k + 1) % 100}`);
  return { words, finish: n < max ? "stop" : "length" };
}

function startFake(): Fake {
  const fake: Fake = {
    url: "",
    requests: [],
    script: [],
    delayMs: 0,
    inFlight: 0,
    maxInFlight: 0,
    close: async () => {},
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const body = await req.json();
    fake.requests.push({ path, body, auth: req.headers.get("authorization") });
    fake.inFlight++;
    fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight);
    try {
      const chat = path.endsWith("/chat/completions");
      const prompt = chat ? body.messages.at(-1).content : body.prompt;
      const action = fake.script.shift() ?? fake.chaos?.(prompt);
      if (action && "reply" in action) {
        return new Response(action.reply, { headers: { "content-type": "application/json" } });
      }
      if (action && "stallMs" in action) {
        const ms = action.stallMs;
        const stream = new ReadableStream<Uint8Array>({
          async start(c) {
            c.enqueue(new TextEncoder().encode('{"choices": [{"text": "'));
            await sleep(ms);
            try {
              c.enqueue(new TextEncoder().encode('late"}]}'));
              c.close();
            } catch { /* the client hung up: expected */ }
          },
        });
        return new Response(stream, { headers: { "content-type": "application/json" } });
      }
      if (action && "status" in action) {
        const headers = action.retryAfter ? { "retry-after": action.retryAfter } : undefined;
        return new Response(`{"error":"scripted ${action.status}"}`, {
          status: action.status,
          headers,
        });
      }
      await sleep(action?.delayMs ?? fake.delayMs);
      const { words, finish } = continuation(prompt, body.max_tokens);
      const text = words.map((w) => " " + w).join("");
      const lps = words.map((_, k) => -(k + 1) / 10);
      const choice = chat
        ? {
          message: { role: "assistant", content: text },
          logprobs: { content: words.map((w, k) => ({ token: " " + w, logprob: lps[k] })) },
        }
        : { text, logprobs: { tokens: words.map((w) => " " + w), token_logprobs: lps } };
      return Response.json({
        choices: [{ index: 0, finish_reason: finish, ...choice }],
        usage: { completion_tokens: words.length },
      });
    } finally {
      fake.inFlight--;
    }
  });
  fake.url = `http://127.0.0.1:${server.addr.port}/v1`;
  fake.close = () => server.shutdown();
  return fake;
}

/** A WordLevel tokenizer folder (w0-w99, "user", "bot", "STOP", "<eos>") with a chat template. */
async function tokenizerDir(): Promise<string> {
  const dir = await Deno.makeTempDir();
  const words = [
    "<unk>",
    "<eos>",
    "user",
    "bot",
    "STOP",
    ...Array.from({ length: 100 }, (_, i) => `w${i}`),
  ];
  const vocab = Object.fromEntries(words.map((w, i) => [w, i]));
  const special = { id: 1, content: "<eos>", single_word: false, lstrip: false, rstrip: false };
  await Deno.writeTextFile(
    join(dir, "tokenizer.json"),
    JSON.stringify({
      version: "1.0",
      added_tokens: [{ ...special, normalized: false, special: true }],
      normalizer: null,
      pre_tokenizer: { type: "WhitespaceSplit" },
      post_processor: null,
      decoder: null,
      model: { type: "WordLevel", vocab, unk_token: "<unk>" },
    }),
  );
  await Deno.writeTextFile(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({
      eos_token: "<eos>",
      chat_template: "{% for m in messages %}user {{ m['content'] }} {% endfor %}bot",
    }),
  );
  return dir;
}

async function withFake(fn: (fake: Fake) => Promise<void>): Promise<void> {
  const fake = startFake();
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

function model(fake: Fake, extra: Partial<RemoteModelOptions> = {}): Promise<RemoteModel> {
  return loadRemoteModel({ baseUrl: fake.url, model: "fake-1", retries: 0, ...extra });
}

const QUIET = { progress: "silent" as const };

Deno.test("source strings and API roots parse as documented", () => {
  assert.deepEqual(parseRemoteSource("openai:http://127.0.0.1:8000/v1#org/m-1.5B"), {
    baseUrl: "http://127.0.0.1:8000/v1",
    model: "org/m-1.5B",
  });
  assert.throws(() => parseRemoteSource("openai:127.0.0.1#m"), /expected openai:<baseURL>#<model>/);
  assert.equal(apiRoot("http://h:1/v1/"), "http://h:1/v1");
  assert.equal(apiRoot("http://h:1"), "http://h:1/v1");
});

Deno.test("chat endpoint: text, server logprobs, no token ids, per-row seeds, API key", async () => {
  Deno.env.set("SC_FAKE_KEY", "sk-test-123");
  await withFake(async (fake) => {
    const m = await loadRemoteModel(`openai:${fake.url}#fake-1`, { apiKeyEnv: "SC_FAKE_KEY" });
    assert.equal(m.source, `openai:${fake.url}#fake-1`);
    assert.equal(m.capabilities.logprobs, false);
    const g = await m.generate({
      prompts: ["w3", "w10"],
      maxNewTokens: 3,
      temperature: 0.7,
      topP: 0.9,
      seed: 5,
      stop: ["\n\n"],
      ...QUIET,
    });
    assert.deepEqual(g.text, [" w4 w5 w6", " w11 w12 w13"]);
    assert.deepEqual(g.tokenIds, [[], []]);
    assert.deepEqual(g.promptIds, [[], []]);
    assert.deepEqual(g.logprobs, [[-0.1, -0.2, -0.3], [-0.1, -0.2, -0.3]]);
    assert.deepEqual(g.forced, [[false, false, false], [false, false, false]]);
    assert.equal(m.capabilities.logprobs, true);
    const bodies = fake.requests.map((r) => r.body).sort((a, b) => Number(a.seed) - Number(b.seed));
    assert.ok(fake.requests.every((r) => r.path === "/v1/chat/completions"));
    assert.ok(fake.requests.every((r) => r.auth === "Bearer sk-test-123"));
    assert.deepEqual(bodies[0], {
      model: "fake-1",
      messages: [{ role: "user", content: "w3" }],
      max_tokens: 3,
      temperature: 0.7,
      top_p: 0.9,
      seed: 5 * 1_000_003,
      n: 1,
      logprobs: true,
      stop: ["\n\n"],
    });
    assert.equal(bodies[1].seed, 5 * 1_000_003 + 1);
  });
  Deno.env.delete("SC_FAKE_KEY");
});

Deno.test("completions with a local tokenizer: template applied here, token ids re-encoded", async () => {
  await withFake(async (fake) => {
    const m = await model(fake, { tokenizerDir: await tokenizerDir() });
    const g = await m.generate({ prompts: ["w3"], maxNewTokens: 4, ...QUIET });
    assert.equal(fake.requests[0].path, "/v1/completions");
    assert.equal(fake.requests[0].body.prompt, "user w3 bot");
    assert.equal(fake.requests[0].body.logprobs, 1);
    assert.equal(g.text[0], " w4 w5 w6 w7");
    const id = (w: string) => m.tokenizer!.tokenToId(w)!;
    assert.deepEqual(g.tokenIds[0], ["w4", "w5", "w6", "w7"].map(id));
    assert.deepEqual(g.promptIds[0], ["user", "w3", "bot"].map(id));
    assert.deepEqual(g.logprobs[0], [-0.1, -0.2, -0.3, -0.4]);
    // chat: false sends the prompt as written
    await m.generate({ prompts: ["w7 w8"], maxNewTokens: 1, chat: false, ...QUIET });
    assert.equal(fake.requests[1].body.prompt, "w7 w8");
    // Token ids are sent as their decoded text, without a template.
    const t = await m.generate({ inputIds: [[id("user"), id("w5")]], maxNewTokens: 2, ...QUIET });
    assert.equal(fake.requests[2].body.prompt, "user w5");
    assert.deepEqual(t.promptIds, [[id("user"), id("w5")]]);
    assert.equal(t.text[0], " w6 w7");
  });
});

Deno.test("prefill: forced ids appended to the raw prompt, flagged forced, refused on chat", async () => {
  await withFake(async (fake) => {
    const m = await model(fake, { tokenizerDir: await tokenizerDir() });
    const id = (w: string) => m.tokenizer!.tokenToId(w)!;
    const g = await m.generate({
      prompts: ["w3"],
      maxNewTokens: 5,
      force: [[{ step: 0, tokens: [id("w20"), id("w21")] }]],
      ...QUIET,
    });
    assert.equal(fake.requests.length, 1);
    assert.equal(fake.requests[0].body.prompt, "user w3 bot w20 w21");
    assert.equal(fake.requests[0].body.max_tokens, 3);
    assert.equal(g.text[0], " w20 w21 w22 w23 w24");
    assert.deepEqual(g.forced[0], [true, true, false, false, false]);
    assert.deepEqual(g.tokenIds[0], ["w20", "w21", "w22", "w23", "w24"].map(id));
    assert.ok(Number.isNaN(g.logprobs[0][0]) && g.logprobs[0][2] === -0.1);
    const chatModel = await model(fake);
    await assert.rejects(
      chatModel.generate({ prompts: ["w3"], forceText: [[{ step: 0, text: " w9" }]], ...QUIET }),
      /needs the raw-prompt \/v1\/completions endpoint/,
    );
    await assert.rejects(
      chatModel.generate({ prompts: ["w3"], force: [[{ step: 0, tokens: [1] }]], ...QUIET }),
      /no local tokenizer/,
    );
    // Without a tokenizer, chat: false + forceText works on the completions endpoint.
    const t = await chatModel.generate({
      prompts: ["x w3"],
      chat: false,
      maxNewTokens: 3,
      forceText: [[{ step: 0, text: " w40" }]],
      ...QUIET,
    });
    assert.equal(fake.requests.at(-1)!.body.prompt, "x w3 w40");
    assert.equal(t.text[0], " w40 w41 w42");
    assert.deepEqual(t.forced[0], [true, false, false]);
  });
});

Deno.test("injection at step t: generate t tokens, append, continue (two calls)", async () => {
  await withFake(async (fake) => {
    const m = await model(fake, { tokenizerDir: await tokenizerDir() });
    const id = (w: string) => m.tokenizer!.tokenToId(w)!;
    const g = await m.generate({
      prompts: ["w3"],
      maxNewTokens: 6,
      force: [[{ step: 2, tokens: [id("w50")] }]],
      ...QUIET,
    });
    assert.equal(fake.requests.length, 2);
    assert.equal(fake.requests[0].body.prompt, "user w3 bot");
    assert.equal(fake.requests[0].body.max_tokens, 2);
    assert.equal(fake.requests[1].body.prompt, "user w3 bot w4 w5 w50");
    assert.equal(fake.requests[1].body.max_tokens, 3);
    assert.equal(g.text[0], " w4 w5 w50 w51 w52 w53");
    assert.deepEqual(g.forced[0], [false, false, true, false, false, false]);
    // A row that stops before the injection step is not injected (as local generation).
    fake.requests.length = 0;
    const s = await m.generate({
      prompts: ["STOP w3"],
      maxNewTokens: 6,
      force: [[{ step: 4, tokens: [id("w50")] }]],
      ...QUIET,
    });
    assert.equal(fake.requests.length, 1);
    assert.equal(s.text[0], " w4 w5");
    assert.deepEqual(s.forced[0], [false, false]);
  });
});

Deno.test("postJson retries 5xx and 429 (Retry-After honoured) but not 400", async () => {
  await withFake(async (fake) => {
    const url = `${fake.url}/completions`;
    const body = { model: "m", prompt: "w1", max_tokens: 1 };
    const retries: string[] = [];
    fake.script.push({ status: 500 }, { status: 503 });
    const r = await postJson<{ choices: { text: string }[] }>(url, body, {
      retries: 3,
      baseDelayMs: 5,
      onRetry: (i) => retries.push(i.reason),
    });
    assert.equal(r.choices[0].text, " w2");
    assert.deepEqual(retries, ["HTTP 500", "HTTP 503"]);
    assert.equal(fake.requests.length, 3);
    fake.script.push({ status: 429, retryAfter: "1" });
    const t0 = performance.now();
    await postJson(url, body, { retries: 1, baseDelayMs: 1 });
    const waited = performance.now() - t0;
    assert.ok(waited >= 950, `waited ${waited.toFixed(0)} ms, Retry-After asked for 1000`);
    fake.script.push({ status: 400 }, { status: 500 });
    const before = fake.requests.length;
    await assert.rejects(postJson(url, body, { retries: 3, baseDelayMs: 1 }), (e: HttpError) => {
      assert.equal(e.status, 400);
      assert.match(e.message, /HTTP 400 .*scripted 400/);
      return true;
    });
    assert.equal(fake.requests.length - before, 1);
    fake.script.length = 0;
    // Exhausted retries surface the last failure.
    fake.script.push({ status: 502 }, { status: 502 });
    await assert.rejects(postJson(url, body, { retries: 1, baseDelayMs: 1 }), /HTTP 502/);
  });
});

Deno.test("backoff grows with jitter inside [cap/2, cap]; Retry-After dates parse", () => {
  assert.equal(backoffDelay(0, 0, 100), 50);
  assert.equal(backoffDelay(3, 0.5, 100), 600); // cap 800
  assert.equal(backoffDelay(20, 0.999999, 100, 1000) <= 1000, true);
  assert.equal(parseRetryAfter("2.5"), 2500);
  assert.equal(
    parseRetryAfter("Wed, 21 Oct 2015 07:28:10 GMT", Date.UTC(2015, 9, 21, 7, 28, 0)),
    10000,
  );
  assert.equal(parseRetryAfter("soon"), undefined);
});

Deno.test("timeouts: a slow reply is retried, and fails clearly when it stays slow", async () => {
  await withFake(async (fake) => {
    const m = await model(fake, { timeoutMs: 150, retries: 1 });
    fake.script.push({ delayMs: 600 });
    const g = await m.generate({ prompts: ["w3"], maxNewTokens: 1, ...QUIET });
    assert.equal(g.text[0], " w4");
    assert.equal(fake.requests.length, 2);
    fake.script.push({ delayMs: 600 }, { delayMs: 600 });
    await assert.rejects(
      m.generate({ prompts: ["w3"], maxNewTokens: 1, ...QUIET }),
      /timeout after 150 ms \(attempt 2 of 2\)/,
    );
    await sleep(700); // let the stalled handlers finish before the server closes
  });
});

Deno.test("concurrency: at most `concurrency` requests in flight", async () => {
  await withFake(async (fake) => {
    fake.delayMs = 40;
    const m = await model(fake, { concurrency: 3 });
    const prompts = Array.from({ length: 12 }, (_, i) => `w${i}`);
    const g = await m.generate({ prompts, maxNewTokens: 1, ...QUIET });
    assert.deepEqual(g.text, prompts.map((_, i) => ` w${i + 1}`));
    assert.equal(fake.maxInFlight, 3);
    const sem = new Semaphore(2);
    const order: string[] = [];
    await Promise.all(["a", "b", "c"].map((k) =>
      sem.run(async () => {
        order.push(`${k}+${sem.active}`);
        await sleep(10);
      })
    ));
    assert.deepEqual(order, ["a+2", "b+2", "c+2"]);
    assert.throws(() => new Semaphore(0), /integer >= 1/);
  });
});

Deno.test("disk cache: a repeated request is answered from disk", async () => {
  await withFake(async (fake) => {
    const cacheDir = await Deno.makeTempDir();
    const m = await model(fake, { cacheDir });
    const opts = { prompts: ["w3", "w8"], maxNewTokens: 2, ...QUIET };
    const a = await m.generate(opts);
    assert.equal(fake.requests.length, 2);
    const again = await model(fake, { cacheDir });
    const b = await again.generate(opts);
    assert.deepEqual(b, a);
    assert.equal(fake.requests.length, 2, "no request on a cache hit");
    assert.equal(again.cache!.hits, 2);
    await again.generate({ ...opts, maxNewTokens: 3 });
    assert.equal(fake.requests.length, 4, "other options miss");
  });
});

Deno.test("hidden states fail early with the documented message", async () => {
  await withFake(async (fake) => {
    const m = await model(fake);
    const msg = `Cannot read hidden states: openai:${fake.url}#fake-1 is a remote model ` +
      `(capabilities.hiddenStates is false); use a local model for the compass and the CRAFT ` +
      `latent reward`;
    assert.throws(() => m.forward([[1, 2]]), { message: msg });
    assert.throws(() => requireCapability(m, "hiddenStates"), { message: msg });
    assert.throws(() => requireCapability(m, "training"), /Cannot train: .*training is false/);
    await assert.rejects(
      m.generate({ prompts: ["w3"], returnHiddenStates: [1], ...QUIET }),
      { message: msg },
    );
    assert.equal(fake.requests.length, 0);
    const local = { capabilities: { hiddenStates: true, training: true, logprobs: true } };
    requireCapability(local, "hiddenStates");
  });
});

Deno.test("generateResumable journals each row and skips finished rows on restart", async () => {
  await withFake(async (fake) => {
    const dir = await Deno.makeTempDir();
    const journal = join(dir, "gen.jsonl");
    const rows = Array.from({ length: 6 }, (_, i) => ({ id: `r${i}`, prompt: `w${i * 10}` }));
    const m = await model(fake, { concurrency: 2 });
    const opts = { maxNewTokens: 2, temperature: 0, ...QUIET };
    fake.script.push({ delayMs: 0 }, { delayMs: 0 }, { delayMs: 0 }, { status: 400 });
    await assert.rejects(generateResumable(m, rows, opts, journal), /HTTP 400/);
    const lines = (await Deno.readTextFile(journal)).trim().split("\n");
    const finished = lines.slice(1).map((l) => JSON.parse(l).id);
    assert.ok(finished.length >= 2 && finished.length <= 4, `journaled ${finished.length} rows`);
    // A crash mid-write leaves a cut-off line: it is dropped.
    await Deno.writeTextFile(journal, '{"id":"r5","pro', { append: true });
    const sent = fake.requests.length;
    const out = await generateResumable(m, rows, opts, journal);
    assert.equal(fake.requests.length - sent, rows.length - finished.length);
    assert.deepEqual(out.map((r) => r.id), rows.map((r) => r.id));
    assert.deepEqual(out.map((r) => r.text), rows.map((_, i) => ` w${i * 10 + 1} w${i * 10 + 2}`));
    assert.deepEqual(out[3].logprobs, [-0.1, -0.2]);
    assert.equal(out[4].seed, 4);
    const all = (await Deno.readTextFile(journal)).trim().split("\n");
    assert.equal(all.length, 1 + rows.length);
    // Nothing left to do: no request.
    const n = fake.requests.length;
    await generateResumable(m, rows, opts, journal);
    assert.equal(fake.requests.length, n);
    await assert.rejects(
      generateResumable(m, rows, { ...opts, maxNewTokens: 3 }, journal),
      /written by another run/,
    );
    await assert.rejects(
      generateResumable(m, [{ id: "r0", prompt: "changed" }], opts, journal),
      /journaled with another prompt/,
    );
  });
});

/** The five ways a flaky OpenAI-compatible server fails a call. */
const FAULTS: { name: string; action: Action; error: RegExp }[] = [
  { name: "500", action: { status: 500 }, error: /HTTP 500/ },
  { name: "429", action: { status: 429, retryAfter: "1" }, error: /HTTP 429/ },
  { name: "bad JSON", action: { reply: '{"choices": [{"te' }, error: /the reply is not JSON/ },
  { name: "no choices", action: { reply: '{"object": "text_completion"}' }, error: /no choices/ },
  { name: "stall", action: { stallMs: 500 }, error: /timeout after 150 ms/ },
];

/**
 * A seeded third of the calls fail, in the five ways above, decided per (prompt, attempt) so
 * the outcome does not depend on the order in which concurrent calls arrive.
 */
function flaky(fake: Fake, seed: number): (prompt: string, attempt: number) => number {
  const fault = (prompt: string, attempt: number): number => {
    let h = seed;
    for (const ch of `${prompt}#${attempt}`) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    const rng = makeRng(h);
    return rng.next() < 1 / 3 ? Math.floor(rng.next() * FAULTS.length) : -1;
  };
  const attempts = new Map<string, number>();
  fake.chaos = (prompt) => {
    const n = attempts.get(prompt) ?? 0;
    attempts.set(prompt, n + 1);
    const f = fault(prompt, n);
    return f < 0 ? undefined : FAULTS[f].action;
  };
  return fault;
}

const FLAKY_OPTS = { timeoutMs: 150, baseDelayMs: 2, maxDelayMs: 20, maxRetryAfterMs: 15 };

Deno.test("a server failing a third of its calls: rows that succeeded are kept, errors per row", async () => {
  await withFake(async (fake) => {
    const fault = flaky(fake, 18);
    const m = await model(fake, { ...FLAKY_OPTS, retries: 0, concurrency: 8 });
    const batches = Array.from(
      { length: 8 },
      (_, b) => Array.from({ length: 16 }, (_, i) => `b${b} w${i}`),
    );
    let kept = 0, asked = 0;
    const seen = new Set<string>();
    for (const prompts of batches) {
      const g = await m.generate({ prompts, maxNewTokens: 2, onRowError: "keep", ...QUIET });
      prompts.forEach((p, i) => {
        const f = fault(p, 0);
        asked++;
        if (f < 0) {
          kept++;
          assert.equal(g.errors[i], null);
          assert.equal(g.text[i], ` w${i + 1} w${i + 2}`);
          assert.deepEqual(g.logprobs[i], [-0.1, -0.2]);
        } else {
          seen.add(FAULTS[f].name);
          assert.match(g.errors[i]!, FAULTS[f].error, `row ${i} (${FAULTS[f].name})`);
          assert.equal(g.text[i], "");
          assert.deepEqual([g.logprobs[i], g.forced[i], g.answer![i]], [[], [], ""]);
        }
      });
      assert.equal(g.failed, g.errors.filter((e) => e !== null).length);
    }
    console.log(`retries 0, onRowError "keep": ${kept} of ${asked} rows kept`);
    assert.ok(kept > asked / 2 && kept < asked, `kept ${kept} of ${asked}`);
    assert.deepEqual([...seen].sort(), FAULTS.map((f) => f.name).sort(), "every fault occurred");
    // The default throws once every row has finished; the error keeps the rows.
    const prompts = Array.from({ length: 16 }, (_, i) => `c w${i}`);
    const err = await m.generate({ prompts, maxNewTokens: 2, ...QUIET }).catch((e) => e);
    assert.ok(err instanceof RemoteGenerateError, String(err));
    const ok = prompts.map((p) => fault(p, 0) < 0);
    assert.match(err.message, new RegExp(`${ok.filter((x) => !x).length} of 16 rows failed`));
    assert.deepEqual(err.result.errors.map((e: string | null) => e === null), ok);
    assert.deepEqual(
      err.result.text.filter((_: string, i: number) => ok[i]),
      prompts.map((_, i) => ` w${i + 1} w${i + 2}`).filter((_, i) => ok[i]),
    );
    await sleep(600); // let the stalled replies finish before the server closes
  });
});

Deno.test("a server failing a third of its calls: with enough retries every row succeeds", async () => {
  await withFake(async (fake) => {
    flaky(fake, 18);
    const retried: { reason: string; delayMs: number; row: number }[] = [];
    const m = await model(fake, {
      ...FLAKY_OPTS,
      retries: 8,
      concurrency: 8,
      onRetry: (r) => retried.push(r),
    });
    let rows = 0;
    const t0 = performance.now();
    for (let b = 0; b < 8; b++) {
      const prompts = Array.from({ length: 16 }, (_, i) => `b${b} w${i}`);
      const g = await m.generate({ prompts, maxNewTokens: 2, ...QUIET });
      assert.deepEqual(g.errors, new Array(16).fill(null));
      assert.deepEqual(g.text, prompts.map((_, i) => ` w${i + 1} w${i + 2}`));
      rows += g.text.length;
    }
    const ms = performance.now() - t0;
    console.log(`retries 8: ${rows} of 128 rows, ${retried.length} retries, ${ms.toFixed(0)} ms`);
    assert.equal(rows, 128);
    assert.equal(fake.requests.length, 128 + retried.length);
    for (const f of ["HTTP 500", "HTTP 429", "not JSON", "no choices", "timeout"]) {
      assert.ok(retried.some((r) => r.reason.includes(f)), `a retry after ${f}`);
    }
    // Retry-After: 1 is capped by maxRetryAfterMs (15 ms); backoff by maxDelayMs (20 ms).
    const after429 = retried.filter((r) => r.reason === "HTTP 429");
    assert.ok(after429.every((r) => r.delayMs === 15), JSON.stringify(after429.slice(0, 3)));
    assert.ok(retried.every((r) => r.delayMs <= 20));
    await sleep(600);
  });
});

Deno.test("generateResumable over a flaky server: failed rows are not journaled, a rerun asks only for them", async () => {
  await withFake(async (fake) => {
    const fault = flaky(fake, 7);
    const dir = await Deno.makeTempDir();
    const journal = join(dir, "flaky.jsonl");
    const rows = Array.from({ length: 24 }, (_, i) => ({ id: `r${i}`, prompt: `w${i}` }));
    const opts = { maxNewTokens: 2, ...QUIET };
    const failing = rows.filter((r) => fault(r.prompt, 0) >= 0).map((r) => r.id);
    assert.ok(failing.length > 0);
    const flakyModel = await model(fake, { ...FLAKY_OPTS, retries: 0, concurrency: 4 });
    const err = await generateResumable(flakyModel, rows, opts, journal).catch((e) => e);
    assert.ok(err instanceof ResumableGenerationError, String(err));
    assert.deepEqual(err.failures.map((f: { id: string }) => f.id), failing);
    assert.equal(
      err.records.filter((r: { error?: string }) => !r.error).length,
      24 - failing.length,
    );
    const journaled = (await Deno.readTextFile(journal)).trim().split("\n").slice(1);
    assert.equal(journaled.length, 24 - failing.length);
    // "keep" returns the same records (the rows still failing are empty with an error).
    const sent = fake.requests.length;
    const patient = await model(fake, { ...FLAKY_OPTS, retries: 8, concurrency: 4 });
    const out = await generateResumable(patient, rows, { ...opts, onRowError: "keep" }, journal);
    const asked = new Set(
      fake.requests.slice(sent).map((r) => (r.body.messages as { content: string }[])[0].content),
    );
    assert.deepEqual(
      [...asked].sort(),
      rows.filter((r) => failing.includes(r.id)).map((r) => r.prompt).sort(),
    );
    assert.deepEqual(out.map((r) => r.error), new Array(24).fill(undefined));
    assert.deepEqual(out.map((r) => r.text), rows.map((_, i) => ` w${i + 1} w${i + 2}`));
    await sleep(600);
  });
});
