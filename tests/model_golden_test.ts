import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { numberTokenizer, TEST_BACKEND, useTestBackend } from "./_helpers.ts";
import { createModel } from "../lib/model/create.ts";

await useTestBackend();

/**
 * A one-layer GPT-2 (d=2, vocab 3) whose block weights are zero: attention and MLP then add
 * only their output biases b1, b2, so the final residual is x = wte[id] + wpe[pos] + b1 + b2.
 * LayerNorm of a 2-vector [a, b] (weight 1, bias 0) is [u, -u] with
 * u = ((a - b) / 2) / sqrt(((a - b) / 2)^2 + eps), and logits = LN(x) . wte[v].
 */
Deno.test("gpt2 golden: hand-derived logits of a one-layer model with explicit weights", async () => {
  const m = await createModel(
    { arch: "gpt2", vocabSize: 3, nLayer: 1, dModel: 2, nHead: 1, maxPositions: 4 },
    { tokenizer: numberTokenizer(3), backend: TEST_BACKEND },
  );
  const set = (name: string, values: number[]) => {
    const v = m.params.get(name)!;
    v.assign(tf.tensor(values, v.shape));
  };
  const wte = [[1, 0], [0, 2], [-1, 1]];
  const wpe = [[0.5, 0], [0, 0.5], [0.25, -0.25], [0, 0]];
  const b1 = [0.1, -0.2];
  const b2 = [0.3, 0.1];
  set("wte.weight", wte.flat());
  set("wpe.weight", wpe.flat());
  for (const [name, v] of m.params) {
    if (/^h\.0\.(attn|mlp)\..*weight$/.test(name)) v.assign(tf.zerosLike(v));
    if (/^h\.0\.(attn\.c_attn|mlp\.c_fc)\.bias$/.test(name)) v.assign(tf.zerosLike(v));
  }
  set("h.0.attn.c_proj.bias", b1);
  set("h.0.mlp.c_proj.bias", b2);
  const ids = [0, 1, 2];
  const f = m.forward([ids]);
  const got = (await f.logits!.array())[0];
  const eps = 1e-5;
  ids.forEach((id, pos) => {
    const a = wte[id][0] + wpe[pos][0] + b1[0] + b2[0];
    const b = wte[id][1] + wpe[pos][1] + b1[1] + b2[1];
    const half = (a - b) / 2;
    const u = half / Math.sqrt(half * half + eps);
    for (let v = 0; v < 3; v++) {
      const expected = u * wte[v][0] - u * wte[v][1];
      assert.ok(
        Math.abs(got[pos][v] - expected) < 1e-5,
        `pos ${pos} vocab ${v}: ${got[pos][v]} vs ${expected}`,
      );
    }
  });
  tf.dispose(f.logits!);
  m.dispose();
});

/**
 * A one-layer Llama whose o_proj and down_proj are zero: blocks add nothing, so the last
 * hidden state is the embedding e, and logits = (e / rms(e)) * w_norm . E[v].
 */
Deno.test("llama golden: hand-derived logits with zeroed output projections", async () => {
  const m = await createModel(
    {
      arch: "llama",
      vocabSize: 3,
      nLayer: 1,
      dModel: 2,
      nHead: 1,
      dFf: 2,
      tieWordEmbeddings: true,
    },
    { tokenizer: numberTokenizer(3), backend: TEST_BACKEND },
  );
  const emb = [[1, 2], [-3, 1], [0.5, 0.5]];
  const wn = [2, 0.5];
  m.params.get("model.embed_tokens.weight")!.assign(tf.tensor2d(emb));
  m.params.get("model.norm.weight")!.assign(tf.tensor1d(wn));
  for (const n of ["self_attn.o_proj.weight", "mlp.down_proj.weight"]) {
    const v = m.params.get(`model.layers.0.${n}`)!;
    v.assign(tf.zerosLike(v));
  }
  const f = m.forward([[0, 1, 2]], { hiddenStates: [1] });
  const got = (await f.logits!.array())[0];
  [0, 1, 2].forEach((id, pos) => {
    const e = emb[id];
    const rms = Math.sqrt((e[0] ** 2 + e[1] ** 2) / 2 + 1e-6);
    const n = [e[0] / rms * wn[0], e[1] / rms * wn[1]];
    for (let v = 0; v < 3; v++) {
      const expected = n[0] * emb[v][0] + n[1] * emb[v][1];
      assert.ok(Math.abs(got[pos][v] - expected) < 1e-4, `pos ${pos} v ${v}`);
    }
  });
  tf.dispose([f.logits!, f.hiddenStates[1]]);
  m.dispose();
});
