/**
 * Issue 18 item 3: untrusted config.json, tokenizer.json, chat templates and weights are
 * refused with a clear, bounded error naming the file and field, before anything large is
 * allocated. Each test reproduces a probed defect (what happened before is in its comment).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { parseConfig } from "../lib/model/config.ts";
import { checkMemory, paramCount } from "../lib/model/config_check.ts";
import { paramSpecs } from "../lib/model/weights.ts";
import { tokenizerFromJson } from "../lib/model/tokenizer.ts";
import { renderTemplate } from "../lib/model/chat_template.ts";
import { CHECKPOINT_DIR, loadModel, paramsFromCheckpoint } from "../lib/model/load.ts";
import { readModelWeights, readSafetensors, serializeSafetensors } from "../lib/io/safetensors.ts";
import { useTestBackend } from "./_helpers.ts";

const TOY = join(CHECKPOINT_DIR.pathname, "toy-base");
const toyConfig = () => JSON.parse(Deno.readTextFileSync(join(TOY, "config.json")));
const toyTokenizer = () => JSON.parse(Deno.readTextFileSync(join(TOY, "tokenizer.json")));
const toyTokConfig = () => JSON.parse(Deno.readTextFileSync(join(TOY, "tokenizer_config.json")));

const LLAMA = {
  model_type: "llama",
  vocab_size: 64,
  hidden_size: 32,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  intermediate_size: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
};

/** Asserts that `f` throws an Error (not a RangeError/TypeError) matching `re`, bounded. */
function refuses(f: () => unknown, re: RegExp): string {
  let msg = "";
  assert.throws(f, (err: unknown) => {
    assert.ok(err instanceof Error && err.constructor === Error, `bare ${String(err)}`);
    msg = err.message;
    assert.match(msg, re);
    assert.ok(msg.length <= 600, `message of ${msg.length} chars`);
    return true;
  });
  return msg;
}

Deno.test("config: n_layer 1e9 is refused at once (before: out-of-memory abort after 14 s)", () => {
  const t0 = performance.now();
  refuses(() => parseConfig({ ...toyConfig(), n_layer: 1e9 }, "c.json"), /c\.json.*'n_layer'/);
  assert.ok(performance.now() - t0 < 1000);
});

Deno.test("config: invalid values are errors naming the field (before: 239 such configs loaded)", () => {
  const gpt2 = toyConfig();
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...gpt2, n_head: 0 }, /n_head/],
    [{ ...gpt2, n_head: 3 }, /n_embd \(128\) is not divisible by n_head \(3\)/],
    [{ ...gpt2, bos_token_id: -1 }, /bos_token_id/],
    [{ ...gpt2, eos_token_id: 664 }, /eos_token_id 664 is outside the vocabulary/],
    [{ ...gpt2, pad_token_id: [0, 9999] }, /pad_token_id 9999/],
    [{ ...gpt2, layer_norm_epsilon: 0 }, /layer_norm_epsilon/],
    [{ ...gpt2, layer_norm_epsilon: "1e-5" }, /'layer_norm_epsilon' is "1e-5"; expected a number/],
    [{ ...gpt2, tie_word_embeddings: "yes" }, /'tie_word_embeddings'/],
    [{ ...gpt2, n_inner: 2.5 }, /'n_inner'/],
    [{ ...LLAMA, num_key_value_heads: 3 }, /multiple of num_key_value_heads/],
    [{ ...LLAMA, num_key_value_heads: 0 }, /num_key_value_heads/],
    [{ ...LLAMA, head_dim: 0 }, /head_dim/],
    [{ ...LLAMA, rms_norm_eps: -1e-6 }, /rms_norm_eps/],
    [{ ...LLAMA, rope_theta: -10000 }, /rope_theta/],
    [{ ...LLAMA, rope_theta: "10000" }, /'rope_theta'/],
    [{ ...LLAMA, rope_scaling: { rope_type: "linear", factor: -2 } }, /factor/],
    [{ ...LLAMA, rope_scaling: { rope_type: "linear", factor: "2" } }, /factor must be a number/],
    [{ ...LLAMA, rope_scaling: [1, 2] }, /'rope_scaling'/],
    [{
      ...LLAMA,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 4,
        high_freq_factor: 1,
        original_max_position_embeddings: 8192,
      },
    }, /high_freq_factor \(1\) must exceed low_freq_factor \(4\)/],
    [{ ...LLAMA, num_hidden_layers: -1 }, /'num_hidden_layers'/],
    [{ ...LLAMA, vocab_size: 2 ** 31 }, /'vocab_size'/],
    [{ ...LLAMA, layer_types: "full" }, /'layer_types'/],
  ];
  for (const [raw, re] of cases) refuses(() => parseConfig(raw, "cfg/config.json"), re);
});

Deno.test("config: errors echo a bounded slice of a huge value", () => {
  const huge = "x".repeat(200_000);
  for (
    const raw of [
      { ...toyConfig(), model_type: huge },
      { ...LLAMA, hidden_act: huge },
      {
        ...LLAMA,
        rope_scaling: { rope_type: "longrope", short_factor: new Array(50_000).fill(1) },
      },
    ]
  ) {
    const msg = refuses(() => parseConfig(raw, "config.json"), /config\.json/);
    assert.ok(msg.length < 600, `${msg.length}`);
  }
});

Deno.test("config: valid HF configs still parse (toy, llama with GQA, llama3 rope)", () => {
  parseConfig(toyConfig());
  const c = parseConfig({
    ...LLAMA,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  });
  assert.equal(c.nKvHead, 2);
});

Deno.test("paramCount matches paramSpecs for every family", () => {
  const raws: Record<string, unknown>[] = [
    toyConfig(),
    { ...toyConfig(), tie_word_embeddings: false },
    LLAMA,
    { ...LLAMA, model_type: "qwen2" },
    { ...LLAMA, model_type: "qwen3", head_dim: 16 },
    { ...LLAMA, model_type: "gemma2", head_dim: 8 },
    { ...LLAMA, model_type: "gemma3_text", head_dim: 8 },
    { ...LLAMA, model_type: "phi3" },
    { ...LLAMA, attention_bias: true },
  ];
  for (const raw of raws) {
    const c = parseConfig(raw);
    const want = paramSpecs(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(paramCount(c), want, String(raw.model_type));
  }
});

Deno.test("memory: a config larger than available memory is refused with both sizes", () => {
  const c = parseConfig({ ...LLAMA, num_hidden_layers: 4000, hidden_size: 65536 }, "big.json");
  refuses(() => checkMemory(c, "big.json", 64 * 2 ** 30), /big\.json.*GiB.*64\.00 GiB/);
  checkMemory(parseConfig(toyConfig()), "toy", 64 * 2 ** 30);
});

Deno.test("weights: a layer count that disagrees with the weights names a tensor", () => {
  const file = { metadata: {}, tensors: new Map() } as Parameters<typeof paramsFromCheckpoint>[1];
  const fewer = parseConfig({ ...toyConfig(), n_layer: 3 });
  const more = parseConfig({ ...toyConfig(), n_layer: 5 });
  const real = parseConfig(toyConfig());
  for (const s of paramSpecs(real)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    file.tensors.set("transformer." + s.name, {
      dtype: "F32",
      shape: s.shape,
      data: new Float32Array(n),
    });
  }
  refuses(() => paramsFromCheckpoint(more, file, "dir"), /lack tensor 'transformer\.h\.4\./);
  refuses(() => paramsFromCheckpoint(fewer, file, "dir"), /'transformer\.h\.3\./);
});

Deno.test("weights: NaN or Inf weights are an error naming the tensor (before: generate gave '')", async () => {
  await useTestBackend();
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
      await Deno.copyFile(join(TOY, f), join(dir, f));
    }
    const file = await readSafetensors(join(TOY, "model.safetensors"));
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of file.tensors) out[name] = { shape: t.shape, data: t.data.slice() };
    out["transformer.h.2.mlp.c_fc.weight"].data[17] = NaN;
    await Deno.writeFile(join(dir, "model.safetensors"), serializeSafetensors(out));
    const before = tf.memory().numTensors;
    await assert.rejects(
      () => loadModel(dir),
      /tensor 'transformer\.h\.2\.mlp\.c_fc\.weight' holds NaN at flat index 17/,
    );
    assert.equal(tf.memory().numTensors, before, "no tensor leaked");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("weights: the SafetyWorld checkpoints still load bit-identically", async () => {
  await useTestBackend();
  for (const name of ["toy-base", "toy-shallow"]) {
    const m = await loadModel(name);
    const file = await readSafetensors(join(CHECKPOINT_DIR.pathname, name, "model.safetensors"));
    for (const [key, v] of m.params) {
      const rec = file.tensors.get("transformer." + key) ?? file.tensors.get(key)!;
      assert.deepEqual(v.dataSync(), rec.data, `${name} ${key}`);
    }
    m.dispose();
  }
});

Deno.test("tokenizer: an id of 2^31 is refused at once (before: loadModel hung > 45 s)", () => {
  const j = toyTokenizer();
  j.model.vocab[Object.keys(j.model.vocab)[10]] = 2 ** 31;
  const t0 = performance.now();
  refuses(
    () => tokenizerFromJson(j, toyTokConfig()),
    /tokenizer\.json.*'model\.vocab\[.*2147483648/,
  );
  assert.ok(performance.now() - t0 < 1000);
});

Deno.test("tokenizer: wrong vocab type, unknown unk_token, bad added/special ids are errors", () => {
  // deno-lint-ignore no-explicit-any
  const cases: [(j: Record<string, any>) => void, RegExp][] = [
    // before: encode returned null ids
    [(j) => (j.model.vocab = "abc"), /'model\.vocab' is "abc"/],
    // before: undefined ids, and generate still produced text
    [(j) => (j.model.unk_token = "<zzz>"), /'model\.unk_token' "<zzz>" is not in the vocabulary/],
    [(j) => (j.added_tokens[0].id = -1), /'added_tokens\[0\]'/],
    [(j) => (j.added_tokens = { a: 1 }), /'added_tokens'/],
    [(j) => (j.model.vocab.hello = 1.5), /model\.vocab\["hello"\]/],
    [(j) => (j.post_processor = {
      type: "TemplateProcessing",
      special_tokens: { "<s>": { id: "<s>", ids: [9999], tokens: ["<s>"] } },
    }), /post_processor\.special_tokens\["<s>"\]\.ids.*9999/],
  ];
  for (const [mutate, re] of cases) {
    const j = toyTokenizer();
    mutate(j);
    refuses(() => tokenizerFromJson(j, toyTokConfig(), "tok/tokenizer.json"), re);
  }
});

Deno.test("tokenizer: a WordLevel model without unk_token fails encode instead of undefined ids", () => {
  const j = toyTokenizer();
  delete j.model.unk_token;
  const tok = tokenizerFromJson(j);
  refuses(() => tok.encode("zzzqqq \u2603"), /not in its vocabulary/);
});

Deno.test("loadModel: a tokenizer with more ids than vocab_size is refused", async () => {
  await useTestBackend();
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["tokenizer.json", "tokenizer_config.json", "model.safetensors"]) {
      await Deno.copyFile(join(TOY, f), join(dir, f));
    }
    const j = toyTokenizer();
    j.model.vocab[Object.keys(j.model.vocab)[10]] = 5000;
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(j));
    await Deno.copyFile(join(TOY, "config.json"), join(dir, "config.json"));
    await assert.rejects(
      () => loadModel(dir),
      /vocab_size 664 is smaller than the tokenizer's 5001/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat template: range(1e8) fails fast (before: aborted at the first generate)", () => {
  const cfg = { ...toyTokConfig(), chat_template: "{% for i in range(100000000) %}x{% endfor %}" };
  const tok = tokenizerFromJson(toyTokenizer(), cfg);
  const t0 = performance.now();
  refuses(() => tok.applyChatTemplate([{ role: "user", content: "hi" }]), /range|exceeds/);
  assert.ok(performance.now() - t0 < 1000);
});

Deno.test("chat template: nested loops, doubling strings and huge indents stop within 5 s", () => {
  for (
    const src of [
      "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}",
      "{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
      "{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = ns.a + ns.a %}{% endfor %}",
      "{{ 'a\nb' | indent(400000000) }}",
      "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ]
  ) {
    const t0 = performance.now();
    refuses(() => renderTemplate(new Template(src), {}), /steps|exceeds|limit|call/);
    assert.ok(performance.now() - t0 < 5000, src);
  }
});

Deno.test("chat template: Qwen3, Llama-3 and Llama-2 templates render as Template.render does", () => {
  for (const name of ["qwen3", "llama3", "llama2"]) {
    const src = Deno.readTextFileSync(
      new URL(`./fixtures/chat_templates/${name}.jinja`, import.meta.url),
    );
    const t = new Template(src);
    for (const n of [1, 2, 7, 200]) {
      const messages = Array.from({ length: n }, (_, i) => ({
        role: n === 1 ? "user" : i === 0 ? "system" : i % 2 ? "user" : "assistant",
        content: `turn ${i} <think>why</think> answer`,
      }));
      for (const gen of [true, false]) {
        const vars = { messages, add_generation_prompt: gen, bos_token: "<s>", eos_token: "</s>" };
        assert.equal(renderTemplate(t, vars), t.render(vars), `${name} n=${n}`);
      }
    }
  }
});

Deno.test("weights: an index whose weight_map points outside the folder is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const index = { weight_map: { a: "../../etc/model.safetensors" } };
    await Deno.writeTextFile(join(dir, "model.safetensors.index.json"), JSON.stringify(index));
    await assert.rejects(
      () => readModelWeights(dir),
      /weight_map\['a'\] is "\.\.\/\.\.\/etc\/model\.safetensors"; expected a file name/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("memory: the weight files count toward the limit", () => {
  const c = parseConfig(toyConfig());
  checkMemory(c, "toy", 2 ** 30, 2 ** 20);
  refuses(() => checkMemory(c, "toy", 2 ** 30, 2 ** 30), /weight files.*more than the 1\.00 GiB/);
});

Deno.test("loadModel: generation_config eos ids outside the vocabulary, deep config.json", async () => {
  await useTestBackend();
  const dir = await Deno.makeTempDir();
  try {
    for (
      const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]
    ) {
      await Deno.copyFile(join(TOY, f), join(dir, f));
    }
    await Deno.writeTextFile(join(dir, "generation_config.json"), '{"eos_token_id": [2, 70000]}');
    await assert.rejects(() => loadModel(dir), /eos_token_id 70000 is outside the vocabulary/);
    await Deno.remove(join(dir, "generation_config.json"));
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    await Deno.writeTextFile(join(dir, "config.json"), `{"x": ${deep}}`);
    await assert.rejects(() => loadModel(dir), /config\.json: JSON nested deeper than 64 levels/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
