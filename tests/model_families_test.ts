/**
 * The model families without python: what config.json fields are read (HF defaults included),
 * what is refused (errors naming the field and what is supported), unknown checkpoint tensors
 * refused, gradients through every family's forward, and the hidden-state convention (HF:
 * the last entry after the final norm; `finalResidual` before it). Numerical parity with
 * transformers itself is tests/hf_parity_test.ts.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { TEST_BACKEND, useTestBackend } from "./_helpers.ts";
import { parseConfig } from "../lib/model/config.ts";
import { initParams, paramSpecs } from "../lib/model/weights.ts";
import { forward } from "../lib/model/transformer.ts";
import { paramsFromCheckpoint } from "../lib/model/load.ts";
import type { SafetensorsFile } from "../lib/io/safetensors.ts";
import { ropeInvFreq } from "../lib/model/rope.ts";

await useTestBackend();
void TEST_BACKEND;

const BASE = {
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};

const RAW: Record<string, Record<string, unknown>> = {
  qwen3: { ...BASE, model_type: "qwen3", head_dim: 6 },
  gemma2: { ...BASE, model_type: "gemma2", head_dim: 8, sliding_window: 3 },
  gemma3_text: {
    ...BASE,
    model_type: "gemma3_text",
    head_dim: 8,
    sliding_window: 3,
    final_logit_softcapping: 5,
    layer_types: ["sliding_attention", "full_attention"],
  },
  phi3: { ...BASE, model_type: "phi3", partial_rotary_factor: 0.5, sliding_window: 4 },
  mistral: { ...BASE, model_type: "mistral", sliding_window: 3 },
};

Deno.test("families: config.json fields and HF defaults are read", () => {
  const q3 = parseConfig({ ...BASE, model_type: "qwen3" });
  assert.equal(q3.headDim, 128, "Qwen3Config's head_dim default");
  assert.ok(q3.qkNorm);
  const g2 = parseConfig(RAW.gemma2);
  assert.equal(g2.attnSoftcap, 50);
  assert.equal(g2.finalSoftcap, 30);
  assert.equal(g2.attnScale, 1 / 16, "query_pre_attn_scalar default 256");
  assert.deepEqual(g2.layerTypes, ["sliding", "full"]);
  assert.equal(g2.embedScale, Math.fround(4));
  assert.ok(g2.tieWordEmbeddings && g2.sandwichNorms && g2.normOffset === 1);
  const g3 = parseConfig(RAW.gemma3_text);
  assert.equal(g3.attnSoftcap, undefined, "Gemma 3 attention has no soft-cap in HF");
  assert.equal(g3.rope!.theta, 1e6);
  assert.equal(g3.ropeLocal!.theta, 1e4);
  const old = parseConfig({
    ...RAW.gemma3_text,
    rope_theta: 5e5,
    rope_local_base_freq: 2e3,
    rope_scaling: { rope_type: "linear", factor: 8 },
  });
  assert.deepEqual([old.rope!.type, old.rope!.theta, old.ropeLocal!.theta], ["linear", 5e5, 2e3]);
  const phi = parseConfig(RAW.phi3);
  assert.equal(phi.rope!.dim, 2);
  assert.ok(phi.fusedProjections);
  assert.equal(parseConfig({ ...BASE, model_type: "mistral" }).slidingWindow, 4096);
  assert.equal(
    parseConfig({ ...BASE, model_type: "mistral", sliding_window: null }).slidingWindow,
    undefined,
  );
  const q2 = parseConfig({
    ...BASE,
    model_type: "qwen2",
    num_hidden_layers: 3,
    use_sliding_window: true,
    sliding_window: 8,
    max_window_layers: 1,
  });
  assert.deepEqual(q2.layerTypes, ["full", "sliding", "sliding"]);
  const l3 = parseConfig({
    ...BASE,
    model_type: "llama",
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  });
  assert.equal(l3.rope!.type, "llama3");
  assert.equal(l3.rope!.theta, 500000);
});

Deno.test("families: fields the engine does not implement are errors naming them", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [
      { ...BASE, model_type: "llama", rope_scaling: { rope_type: "su", factor: 2 } },
      /rope_type 'su'.*default, linear, dynamic, llama3, yarn, longrope/,
    ],
    [
      {
        ...BASE,
        model_type: "llama",
        rope_scaling: { rope_type: "linear", factor: 2, mystery: 1 },
      },
      /mystery/,
    ],
    [
      { ...BASE, model_type: "llama", rope_scaling: { rope_type: "llama3", factor: 8 } },
      /needs 'low_freq_factor'/,
    ],
    [{ ...BASE, model_type: "llama", mlp_bias: true }, /mlp_bias/],
    [{ ...BASE, model_type: "llama", hidden_act: "relu" }, /activation 'relu'/],
    [{ ...RAW.gemma3_text, use_bidirectional_attention: true }, /use_bidirectional_attention/],
    [{ ...BASE, model_type: "llama", partial_rotary_factor: 0.5 }, /partial_rotary_factor/],
    [{ ...BASE, model_type: "falcon" }, /model_type 'falcon' is not supported \(gpt2, llama/],
    [
      {
        ...RAW.phi3,
        rope_scaling: { rope_type: "longrope", short_factor: [1, 2], long_factor: [1] },
      },
      /short_factor must be a list of 1 numbers/,
    ],
  ];
  for (const [raw, re] of bad) assert.throws(() => parseConfig(raw), re, JSON.stringify(raw));
});

Deno.test("families: a checkpoint tensor the architecture does not use is an error", () => {
  const c = parseConfig({ ...BASE, model_type: "qwen3", head_dim: 6 });
  const tensors = new Map();
  for (const s of paramSpecs(c)) {
    const shape = s.transposed ? [s.shape[1], s.shape[0]] : s.shape;
    tensors.set(s.name, {
      dtype: "F32",
      shape,
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
    });
  }
  const file: SafetensorsFile = { metadata: {}, tensors };
  const before = tf.memory().numTensors;
  const ok = paramsFromCheckpoint(c, file, "ckpt");
  tf.dispose([...ok.values()]);
  tensors.set("model.layers.0.self_attn.extra_scale", {
    dtype: "F32",
    shape: [1],
    data: new Float32Array(1),
  });
  assert.throws(() => paramsFromCheckpoint(c, file, "ckpt"), /not used by the qwen3.*extra_scale/);
  assert.equal(tf.memory().numTensors, before, "no leak on the error path");
});

Deno.test("families: gradients flow through every family's forward (SFT / LoRA need them)", () => {
  for (const [name, raw] of Object.entries(RAW)) {
    const c = parseConfig(raw);
    const p = initParams(c, 3);
    const ids = [[1, 5, 9, 2, 7, 3], [0, 0, 4, 8, 6, 1]];
    const mask = [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]];
    const vars = [...p.values()];
    const { value, grads } = tf.variableGrads(() => {
      const f = forward(c, p, ids, { attentionMask: mask });
      return tf.mean(tf.square(f.logits!)) as tf.Scalar;
    }, vars);
    assert.ok(Number.isFinite(value.dataSync()[0]), name);
    let nonzero = 0;
    for (const [n, g] of Object.entries(grads)) {
      const d = g.dataSync();
      assert.ok(d.every(Number.isFinite), `${name}: gradient of ${n} finite`);
      if (d.some((x) => x !== 0)) nonzero++;
    }
    assert.ok(
      nonzero >= vars.length - 1,
      `${name}: ${nonzero} of ${vars.length} gradients non-zero`,
    );
    tf.dispose([value, ...Object.values(grads), ...vars]);
  }
});

Deno.test("hidden states: HF numbering (last = after the final norm), finalResidual before it", () => {
  const c = parseConfig(RAW.gemma2);
  const p = initParams(c, 4);
  const ids = [[3, 1, 4, 1, 5]];
  const f = forward(c, p, ids, { hiddenStates: "all", finalResidual: true });
  assert.equal(f.hiddenStates.length, c.nLayer + 1);
  const normed = tf.tidy(() => {
    const x = f.finalResidual!;
    const ms = tf.mean(tf.mul(x, x), -1, true);
    return tf.mul(
      tf.mul(x, tf.rsqrt(tf.add(ms, c.normEps))),
      tf.add(p.get("model.norm.weight")!, 1),
    );
  });
  const diff = tf.tidy(() =>
    tf.max(tf.abs(tf.sub(normed, f.hiddenStates[c.nLayer]))).dataSync()[0]
  );
  assert.ok(diff < 1e-6, `last hidden state is the final norm of finalResidual (${diff})`);
  // An intervention at nLayer edits what the head reads: zero it and the logits are zero.
  const z = forward(c, p, ids, {
    interventions: [{ layer: c.nLayer, fn: (h) => tf.zerosLike(h) }],
    logits: "last",
  });
  assert.deepEqual([...z.logits!.dataSync()].every((v) => v === 0), true);
  tf.dispose([f.logits!, ...f.hiddenStates, f.finalResidual!, normed, z.logits!, ...p.values()]);
});

Deno.test("rope: llama3 keeps high frequencies, divides low ones by the factor", () => {
  const c = parseConfig({
    ...BASE,
    model_type: "llama",
    head_dim: 64,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  });
  const plain = ropeInvFreq({ ...c.rope!, type: "default" }, 0);
  const scaled = ropeInvFreq(c.rope!, 0);
  assert.equal(scaled[0], plain[0]);
  assert.ok(Math.abs(scaled[31] - plain[31] / 8) < 1e-15);
});

Deno.test("families: forward with cache, sliding windows and local RoPE leaks no tensors", () => {
  for (const name of ["gemma3_text", "phi3", "mistral"]) {
    const c = parseConfig(RAW[name]);
    const p = initParams(c, 5);
    const before = tf.memory().numTensors;
    const first = forward(c, p, [[1, 2, 3, 4, 5]], { useCache: true, hiddenStates: "all" });
    const next = forward(c, p, [[6]], {
      cache: first.cache,
      hiddenStates: [-1],
      finalResidual: true,
      interventions: [{ layer: 1, fn: (h) => tf.mul(h, 2) as tf.Tensor3D }],
    });
    tf.dispose([first.logits!, ...first.hiddenStates, ...first.cache!.k, ...first.cache!.v]);
    tf.dispose([next.logits!, next.finalResidual!, ...next.cache!.k, ...next.cache!.v]);
    tf.dispose(next.hiddenStates.filter(Boolean));
    assert.equal(tf.memory().numTensors, before, `${name}: tensors left behind`);
    tf.dispose([...p.values()]);
  }
});
