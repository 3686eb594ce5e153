import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import type { Arch } from "../lib/model/config.ts";

await useTestBackend();

for (const arch of ["gpt2", "llama"] as Arch[]) {
  Deno.test(`${arch}: LM-loss gradients match central finite differences`, async () => {
    const m = await tinyModel(arch, 3);
    const batch = padBatch([[1, 5, 9, 2, 7, 3], [4, 4, 8]], [2, 1]);
    const names = arch === "gpt2"
      ? ["wte.weight", "h.0.attn.c_attn.weight", "h.1.mlp.c_fc.bias", "wpe.weight", "ln_f.weight"]
      : [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_proj.bias",
        "model.layers.0.mlp.gate_proj.weight",
        "model.norm.weight",
      ];
    const vars = names.map((n) => m.params.get(n)!);
    const { grads, value } = tf.variableGrads(() => lmLoss(m.config, m.params, batch), vars);
    const loss = () => tf.tidy(() => lmLoss(m.config, m.params, batch).dataSync()[0]);
    let worst = 0;
    for (const v of vars) {
      const g = grads[v.name].dataSync();
      const data = v.dataSync().slice();
      // Check the 2 largest-gradient entries of each parameter (well above float32 noise).
      const idx = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, 2);
      for (const i of idx) {
        const eps = 1e-2;
        const plus = data.slice();
        plus[i] += eps;
        v.assign(tf.tensor(plus, v.shape));
        const lp = loss();
        const minus = data.slice();
        minus[i] -= eps;
        v.assign(tf.tensor(minus, v.shape));
        const lm = loss();
        v.assign(tf.tensor(data, v.shape));
        const fd = (lp - lm) / (2 * eps);
        const rel = Math.abs(fd - g[i]) / Math.max(Math.abs(g[i]), 1e-3);
        worst = Math.max(worst, rel);
        assert.ok(rel < 0.05, `${v.name}[${i}]: autograd ${g[i]} vs finite difference ${fd}`);
      }
    }
    console.log(
      `  ${arch} gradient check: worst relative error ${worst.toExponential(2)} (tol 5e-2)`,
    );
    tf.dispose([value, ...Object.values(grads)]);
    m.dispose();
  });

  Deno.test(`${arch}: a training step lowers the loss and leaks no tensors`, async () => {
    const m = await tinyModel(arch, 4);
    const batch = padBatch([[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4]], [1, 1]);
    const vars = [...m.params.values()];
    const before = tf.memory().numTensors;
    const opt = new AdamW({ lr: 1e-2 });
    const losses: number[] = [];
    let after0 = 0;
    for (let s = 0; s < 15; s++) {
      const { value, grads } = tf.variableGrads(() => lmLoss(m.config, m.params, batch), vars);
      opt.step(vars, vars.map((v) => grads[v.name]));
      losses.push(value.dataSync()[0]);
      tf.dispose([value, ...Object.values(grads)]);
      if (s === 0) after0 = tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, after0, "tensor count grew across training steps");
    assert.ok(losses[14] < losses[0] * 0.7, `loss ${losses[0]} -> ${losses[14]}`);
    opt.dispose();
    assert.equal(tf.memory().numTensors, before, "optimizer state not freed by dispose()");
    m.dispose();
  });

  Deno.test(`${arch}: creating, cloning and disposing a model frees every tensor`, async () => {
    const before = tf.memory().numTensors;
    const m = await tinyModel(arch, 9);
    const ref = m.cloneParams();
    assert.equal(tf.memory().numTensors, before + 2 * m.params.size);
    tf.dispose([...ref.values()]);
    m.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
}
