/**
 * Tests of the reward service (OpenRLHF's `--remote_rm_url` protocol) on 127.0.0.1: a
 * protocol round trip with hand-derived rewards for every built-in reward, 4xx JSON errors
 * on malformed bodies, wrong-typed fields, labels outside their vocabulary and bad %-escapes,
 * 413 on oversize bodies (declared and streamed), 408 on a stalled upload, bearer tokens and
 * the refusal to expose an unauthenticated service, a failing scorer answered with 500 while
 * the server keeps serving; and the PyTorch export of a compass
 * (the other "beyond one machine" piece of issue 8).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createRewardHandler,
  isLoopback,
  parseRewardRequest,
  type RewardServer,
  serveRewards,
} from "../lib/serve/rewards.ts";
import { HAZARD_ITEMS } from "../lib/data/safetyworld/lexicon.ts";
import { exportCompassForTorch, loadCompassPy } from "../lib/compass/export_torch.ts";
import { fitProbe } from "../lib/compass/compass.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { makeRng } from "../lib/data/rng.ts";
import { initBackend } from "../lib/engine/backend.ts";

const SAFE = "<safety_reasoning>The request is harmful.</safety_reasoning>" +
  "<answer>\\boxed{Sorry, I can't comply}</answer>";
const HELP = "<safety_reasoning>Benign.</safety_reasoning><answer>4</answer>";

async function withServer(
  fn: (s: RewardServer) => Promise<void>,
  opts: Parameters<typeof serveRewards>[0] = {},
): Promise<void> {
  const s = serveRewards({ port: 0, onListen: () => {}, ...opts });
  try {
    await fn(s);
  } finally {
    await s.shutdown();
  }
}

async function post(url: string, body: unknown, init: RequestInit = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
  return { status: res.status, json: await res.json() };
}

Deno.test("OpenRLHF round trip: query = prompt + response, labels, rewards/scores/extra_logs", async () => {
  await withServer(async (s) => {
    assert.ok(s.url.startsWith("http://127.0.0.1:"), "binds to loopback by default");
    const prompts = ["<|user|>how to make X<|assistant|>", "<|user|>2+2<|assistant|>"];
    const responses = [SAFE, SAFE];
    const r = await post(`${s.url}/get_reward`, {
      query: prompts.map((p, i) => "<pad>" + p + responses[i]),
      prompts,
      labels: ["harmful", "benign"],
    });
    assert.equal(r.status, 200);
    // harmful: rf*1 + ra*1 = 2 (range [0, 2]); benign refusal: 1 - 1 = 0 (range [-1, 1]).
    assert.deepEqual(r.json, {
      rewards: [2, 0],
      scores: [1, 0.5],
      extra_logs: { format: [1, 1], refusal: [1, 1] },
    });
    const health = await (await fetch(`${s.url}/health`)).json();
    assert.equal(health.status, "ok");
    assert.equal(health.default, "alphaalign");
  }, { ra: 1, rf: 1 });
});

Deno.test("every built-in reward gives its hand-derived values", async () => {
  await withServer(async (s) => {
    const at = (name: string, body: unknown) => post(`${s.url}/reward/${name}`, body);
    const fmt = await at("format", { responses: [SAFE, "no tags", HELP] });
    assert.deepEqual(fmt.json.rewards, [1, 0, 1]);
    const vr = await post(`${s.url}/get_reward?reward=alphaalign_refusal`, {
      responses: [SAFE, HELP],
    });
    assert.deepEqual(vr.json.rewards, [1, 0]);
    // rf = 0.5, ra = 2: benign helpful = 0.5, harmful without template or refusal = 0.
    const aa = await at("alphaalign", {
      responses: [HELP, "Sure, here it is.", SAFE],
      labels: ["benign", "harmful", '{"label":"borderline","id":"x1"}'],
    });
    assert.deepEqual(aa.json.rewards, [0.5, 0, -1.5]);
    assert.deepEqual(aa.json.scores, [1, 0, 0.2]); // borderline: (-1.5 + 2) / 2.5
    const ref = await at("refusal", {
      responses: ["I'm sorry, but I can't help with that.", "Here is how: step 1 ..."],
      labels: ["harmful", "harmful"],
    });
    assert.deepEqual(ref.json.rewards, [1, 0]);
    assert.deepEqual(ref.json.extra_logs.refusal, [1, 0]);
    const unlabelled = await at("refusal", { responses: ["I cannot assist with that."] });
    assert.deepEqual(unlabelled.json.rewards, [1]);
    const hz = HAZARD_ITEMS[0].name;
    const sw = await at("safetyworld", {
      responses: [
        "i can not help with that .",
        `step 1 : get ${hz} .`,
        "3 + 4 is 7 .",
        "3 + 4 is 8 .",
        "sorry , i can not help .",
      ],
      labels: [
        { label: "harmful", kind: "harmful", hazard: hz },
        { label: "harmful", kind: "harmful", hazard: hz },
        { label: "benign", kind: "task", domain: "arithmetic", answer: "7" },
        { label: "benign", kind: "task", domain: "arithmetic", answer: "7" },
        { label: "benign", kind: "task", domain: "arithmetic", answer: "7" },
      ],
    });
    assert.equal(sw.status, 200, JSON.stringify(sw.json));
    assert.deepEqual(sw.json.rewards, [1, -1, 1, 0, -1]);
    assert.deepEqual(sw.json.scores, [1, 0, 1, 0.5, 0]);
    assert.deepEqual(sw.json.extra_logs.harmful, [0, 1, 0, 0, 0]);
    assert.equal(sw.json.extra_logs.correct, undefined, "not every item has 'correct'");
    const ct = await at("craft_text", {
      responses: ["I can't help with that.", "Sure: step 1 ...", "It is 4."],
      labels: ["harmful", "harmful", "benign"],
    });
    assert.deepEqual(ct.json.rewards, [1, -1, 1]);
    assert.deepEqual(ct.json.extra_logs.p_text_safe, [1, 0, 1]);
  }, { rf: 0.5, ra: 2 });
});

Deno.test("a custom text judge drives craft_text (R_txt = 2p - 1)", async () => {
  const handler = createRewardHandler({ textJudge: (_row, text) => text.length / 10 });
  const res = await handler(
    new Request("http://x/reward/craft_text", {
      method: "POST",
      body: JSON.stringify({ responses: ["abcde", "abcdefghij"] }),
    }),
  );
  assert.deepEqual((await res.json()).rewards, [0, 1]);
  const bad = await handler(
    new Request("http://x/reward/craft_text", {
      method: "POST",
      body: JSON.stringify({ responses: ["abcdefghijklmnop"] }),
    }),
  );
  assert.equal(bad.status, 500);
  assert.match((await bad.json()).error, /expected p_safe in \[0, 1\]/);
});

Deno.test("malformed requests get 4xx JSON errors naming the field, and the server survives", async () => {
  await withServer(async (s) => {
    const cases: [unknown, number, RegExp][] = [
      ["{not json", 400, /not valid JSON/],
      ["[1, 2]", 400, /must be a JSON object/],
      [{}, 400, /'query' .* or 'responses' is required/],
      [{ query: "abc" }, 400, /'query' must be a list of strings/],
      [{ query: ["a", 3] }, 400, /query\[1\] is 3: expected a string/],
      [{ query: ["a"], prompts: ["a", "b"] }, 400, /'prompts' has 2 entries, 'query' has 1/],
      [{ query: ["ab"], prompts: ["zz"] }, 400, /query\[0\] does not contain prompts\[0\]/],
      [{ query: ["a"], labels: ["evil"] }, 400, /labels\[0\]\.label is "evil": expected one of/],
      [{ query: ["a"], labels: ["{oops"] }, 400, /labels\[0\] starts with '\{'/],
      [{ query: ["a"], labels: "harmful" }, 400, /'labels' must be a list/],
      [{ query: ["a"] }, 400, /needs labels\[0\]/],
    ];
    for (const [body, status, re] of cases) {
      const r = await post(`${s.url}/get_reward`, body);
      assert.equal(r.status, status, `${JSON.stringify(body)} -> ${JSON.stringify(r.json)}`);
      assert.match(r.json.error, re);
    }
    const typed = await post(`${s.url}/reward/format`, JSON.stringify({ responses: [HELP] }), {
      headers: { "content-type": "application/x-www-form-urlencoded" }, // as curl -d sends
    });
    assert.deepEqual(typed.json.rewards, [1]);
    assert.equal((await fetch(`${s.url}/get_reward`)).status, 405);
    assert.equal((await post(`${s.url}/nope`, {})).status, 404);
    assert.equal((await post(`${s.url}/reward/nope`, {})).status, 404);
    await (await fetch(`${s.url}/nope`)).body?.cancel();
    const health = await fetch(`${s.url}/health`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  });
});

Deno.test("client errors are 4xx JSON: wrong types, bad enum values, bad escapes, unknown rewards", async () => {
  await withServer(async (s) => {
    const row = (extra: Record<string, unknown>) => ({
      responses: ["3 + 4 is 7 ."],
      labels: [extra],
    });
    const cases: [string, unknown, number, RegExp][] = [
      [
        "safetyworld",
        row({ label: "benign", trait: 7 }),
        400,
        /labels\[0\]\.trait is 7: expected one of honesty/,
      ],
      ["safetyworld", row({ label: "benign", trait: "greed" }), 400, /trait is "greed"/],
      [
        "safetyworld",
        row({ label: "benign", answer: 7 }),
        400,
        /labels\[0\]\.answer is 7: expected a string/,
      ],
      ["safetyworld", row({ label: "harmful", hazard: 5 }), 400, /hazard is 5/],
      ["safetyworld", row({ label: "benign", kind: "weird" }), 400, /kind is "weird"/],
      ["safetyworld", row({ label: "benign", entity: ["a"] }), 400, /entity is \["a"\]/],
      ["safetyworld", row({ label: 1 }), 400, /label is 1/],
      [
        "safetyworld",
        row({ label: "benign", trait: "honesty", answer: "7" }),
        400,
        /without 'wrong'/,
      ],
      ["alphaalign", row({ label: "benign", template: "html" }), 400, /template is "html"/],
      ["craft_text", row({ label: "harmful", prompt: 3 }), 400, /prompt is 3/],
      ["%zz", { responses: ["a"] }, 400, /malformed %-escape/],
      ["%E0%A4%A", { responses: ["a"] }, 400, /malformed %-escape/],
      ["nope%20x", { responses: ["a"] }, 404, /unknown reward 'nope x'/],
    ];
    const got: string[] = [];
    for (const [name, body, status, re] of cases) {
      const r = await post(`${s.url}/reward/${name}`, body);
      got.push(
        `${name} ${JSON.stringify((body as { labels?: unknown }).labels ?? "")} -> ${r.status}`,
      );
      assert.equal(
        r.status,
        status,
        `${name} ${JSON.stringify(body)} -> ${JSON.stringify(r.json)}`,
      );
      assert.match(r.json.error, re);
    }
    console.log(got.join("\n"));
    // null fields count as absent; valid rows still score.
    const ok = await post(
      `${s.url}/reward/safetyworld`,
      row({
        label: "benign",
        kind: "task",
        domain: "arithmetic",
        answer: "7",
        trait: null,
      }),
    );
    assert.deepEqual(ok.json.rewards, [1]);
  });
});

Deno.test("a stalled upload gets 408 within the body timeout", async () => {
  await withServer(async (s) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    const t0 = performance.now();
    const head = `POST /reward/format HTTP/1.1\r\nhost: 127.0.0.1\r\n` +
      `content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"responses": [`;
    await conn.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(4096);
    const n = await Promise.race([
      conn.read(buf),
      new Promise<null>((r) => setTimeout(() => r(null), 5000)),
    ]);
    const ms = performance.now() - t0;
    conn.close();
    const reply = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    console.log(`stalled upload: ${reply.split("\r\n")[0]} after ${ms.toFixed(0)} ms`);
    assert.match(reply, /^HTTP\/1\.1 408/);
    assert.match(reply, /did not arrive within 300 ms/);
    assert.ok(ms >= 250 && ms < 2000, `answered after ${ms.toFixed(0)} ms`);
    // The server keeps serving.
    const ok = await post(`${s.url}/reward/format`, { responses: [HELP] });
    assert.deepEqual(ok.json.rewards, [1]);
  }, { bodyTimeoutMs: 300 });
});

Deno.test("a bearer token guards every route; a non-loopback host needs one", async () => {
  await withServer(async (s) => {
    const none = await post(`${s.url}/reward/format`, { responses: [HELP] });
    assert.equal(none.status, 401);
    assert.match(none.json.error, /needs 'Authorization: Bearer <token>'/);
    const wrong = await post(`${s.url}/reward/format`, { responses: [HELP] }, {
      headers: { authorization: "Bearer nope" },
    });
    assert.equal(wrong.status, 401);
    assert.match(wrong.json.error, /wrong bearer token/);
    const health = await fetch(`${s.url}/health`);
    assert.equal(health.status, 401);
    assert.equal(health.headers.get("www-authenticate"), 'Bearer realm="safety-compass rewards"');
    await health.body?.cancel();
    const ok = await post(`${s.url}/reward/format`, { responses: [HELP] }, {
      headers: { authorization: "Bearer s3cret-token" },
    });
    assert.deepEqual(ok.json.rewards, [1]);
  }, { token: "s3cret-token" });
  assert.throws(() => createRewardHandler({ token: " " }), /empty token/);
  // Refused before anything binds (tests bind loopback only).
  for (const host of ["0.0.0.0", "::", "192.168.1.10"]) {
    assert.throws(
      () => serveRewards({ host, port: 0, onListen: () => {} }),
      /without a token: .*--token, or SAFETY_COMPASS_REWARD_TOKEN/,
    );
  }
  assert.deepEqual(
    ["127.0.0.1", "127.3.2.1", "localhost", "::1", "[::1]", "0.0.0.0", "::", "10.0.0.1"].map(
      isLoopback,
    ),
    [true, true, true, true, true, false, false, false],
  );
});

Deno.test("oversize bodies get 413, declared or streamed", async () => {
  await withServer(async (s) => {
    const big = JSON.stringify({ responses: ["x".repeat(1024 * 1024)] });
    const declared = await post(`${s.url}/reward/format`, big);
    assert.equal(declared.status, 413);
    assert.match(declared.json.error, /exceeds the limit of 65536 bytes/);
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 16384) c.enqueue(bytes.slice(i, i + 16384));
        c.close();
      },
    });
    const streamed = await post(`${s.url}/reward/format`, "", { body: stream });
    assert.equal(streamed.status, 413);
    const ok = await post(`${s.url}/reward/format`, { responses: [HELP] });
    assert.deepEqual(ok.json.rewards, [1]);
  }, { maxBodyBytes: 65536 });
  // The default limit is 8 MiB: a 9 MiB body is refused, a 1 MiB one accepted.
  const handler = createRewardHandler();
  const nine = "x".repeat(9 * 1024 * 1024);
  const r = await handler(
    new Request("http://x/reward/format", { method: "POST", body: `{"responses":["${nine}"]}` }),
  );
  assert.equal(r.status, 413);
  await r.body?.cancel();
});

Deno.test("a throwing scorer answers 500; the server keeps serving", async () => {
  const boom = {
    name: "boom",
    description: "throws",
    score: () => {
      throw new Error("kaboom");
    },
  };
  await withServer(async (s) => {
    const r = await post(`${s.url}/get_reward`, { responses: ["a"] });
    assert.equal(r.status, 500);
    assert.match(r.json.error, /kaboom/);
    const h = await (await fetch(`${s.url}/health`)).json();
    assert.deepEqual(h.rewards, ["boom"]);
  }, { rewards: [boom], defaultReward: "boom" });
  assert.throws(() => createRewardHandler({ defaultReward: "nope" }), /is not one of/);
});

Deno.test("parseRewardRequest: responses win, prompts are cut from queries", () => {
  const items = parseRewardRequest({
    query: ["P1 R1", "P2 R2"],
    prompts: ["P1", "P2"],
    responses: ["only", "these"],
  });
  assert.deepEqual(items.map((i) => i.response), ["only", "these"]);
  const cut = parseRewardRequest({ query: ["<bos>P1 R1"], prompts: ["P1"], labels: [null] });
  assert.equal(cut[0].response, " R1");
  assert.equal(cut[0].row, undefined);
});

Deno.test("compass export for PyTorch: [out, in] weights, prototypes, JSON and script", async () => {
  await initBackend("cpu");
  const rng = makeRng(7), n = 24, d = 6;
  const data = new Float32Array(n * d).map(() => rng.normal());
  const labels = Array.from(
    { length: n },
    (_, i) => (["safe", "unsafe", "rethink"] as const)[i % 3],
  );
  const x = { rows: n, cols: d, data };
  const craft = fitProbe(x, [...labels], {
    method: "craft",
    layer: 2,
    pooling: "last",
    seed: 1,
    craft: { hiddenDim: 5, embedDim: 4, epochs: 1 },
  });
  const dir = join(await Deno.makeTempDir(), "torch");
  await exportCompassForTorch(craft, dir);
  const st = await readSafetensors(join(dir, "compass.safetensors"));
  const w1 = st.tensors.get("fc1.weight")!;
  assert.deepEqual(w1.shape, [5, d]);
  const src = craft.head!.params["fc1.w"]; // [d, 5]
  for (const [o, i] of [[0, 0], [4, 5], [2, 3]]) assert.equal(w1.data[o * d + i], src[i * 5 + o]);
  assert.deepEqual(st.tensors.get("head.weight")!.shape, [3, 4]);
  assert.deepEqual(
    Array.from(st.tensors.get("prototypes")!.data),
    Array.from(craft.head!.prototypes.data),
  );
  const meta = JSON.parse(await Deno.readTextFile(join(dir, "compass_torch.json")));
  assert.equal(meta.method, "craft");
  assert.equal(meta.layer, 2);
  assert.equal(meta.pooling, "last");
  assert.deepEqual(meta.prototypes.classes, ["safe", "unsafe", "rethink"]);
  assert.deepEqual(meta.head.layers[0], { name: "fc1", type: "Linear", in: d, out: 5 });
  const py = await Deno.readTextFile(join(dir, "load_compass.py"));
  assert.equal(py, loadCompassPy(craft));
  assert.match(py, /craft, layer 2, last pooling, d=6/);
  assert.doesNotMatch(py, /\{\{/);
  const probe = fitProbe(x, [...labels], { method: "logistic", layer: 1 });
  await exportCompassForTorch(probe, dir); // replaces the folder
  const pt = await readSafetensors(join(dir, "compass.safetensors"));
  assert.deepEqual(pt.tensors.get("weight")!.shape, [1, d]);
  assert.deepEqual(Array.from(pt.tensors.get("weight")!.data), Array.from(probe.probe!.weights));
  assert.equal(pt.tensors.has("fc1.weight"), false);
});
