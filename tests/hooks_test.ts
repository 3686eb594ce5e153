/**
 * Named activations and hooks (lib/model/hooks.ts): the cache agrees with forward's hidden
 * states, logits and finalResidual bit for bit on GPT-2, Llama (GQA, biases), Gemma 2
 * (sandwich norms, soft-caps, sliding window) and Phi-3 (fused projections); the hook points
 * compose as the block computes them (resid_mid = resid_pre + attn_out, resid_post = resid_mid
 * + mlp_out, attn_out = o_proj(z) + bias); identity hooks leave logits bit-equal, ablations
 * change them, hooks last one call; negative indices; unknown names list the valid ones; no
 * tensor leaks; external (host-memory) weights give the heap's activations.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import {
  TINY_GEMMA2_CONFIG,
  TINY_RAW_CONFIG,
  tinyModel,
  tinyModelFromConfig,
  useTestBackend,
} from "./_helpers.ts";
import type { Model } from "../lib/model/model.ts";
import { attnOutBias, attnOutProject } from "../lib/model/transformer.ts";
import { actName, hookPointNames } from "../lib/model/hook_names.ts";
import { loadModel } from "../lib/model/load.ts";

await useTestBackend();

async function models(): Promise<Model[]> {
  return [
    await tinyModel("gpt2", 3),
    await tinyModel("llama", 4),
    tinyModelFromConfig(TINY_GEMMA2_CONFIG, 5),
    tinyModelFromConfig({ ...TINY_RAW_CONFIG, model_type: "phi3", partial_rotary_factor: 0.5 }, 6),
  ];
}

const IDS = [[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]];

function same(a: tf.Tensor, b: tf.Tensor, what: string) {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const x = a.dataSync(), y = b.dataSync();
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`${what}: differs at ${i}: ${x[i]} vs ${y[i]}`);
  }
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test("runWithCache: every hook point, equal to forward's hidden states and logits bit for bit", async () => {
  for (const m of await models()) {
    const c = m.config;
    const before = tf.memory().numTensors;
    const f = m.forward(IDS, { hiddenStates: "all", finalResidual: true });
    const cache = m.runWithCache(IDS);
    try {
      assert.deepEqual(cache.names, hookPointNames(c), `${m.source}: every point, in order`);
      same(cache.logits!, f.logits!, `${m.source} logits`);
      for (let i = 0; i < c.nLayer; i++) {
        same(cache.get("resid_pre", i), f.hiddenStates[i], `${m.source} resid_pre ${i}`);
        same(cache.hiddenState(i), f.hiddenStates[i], `${m.source} hiddenState(${i})`);
        const post = i + 1 < c.nLayer ? f.hiddenStates[i + 1] : f.finalResidual!;
        same(cache.get("resid_post", i), post, `${m.source} resid_post ${i}`);
        const [b, t] = [IDS.length, IDS[0].length];
        assert.deepEqual(cache.get("pattern", i).shape, [b, c.nHead, t, t]);
        assert.deepEqual(cache.get("z", i).shape, [b, t, c.nHead, c.headDim]);
        // The points compose as the block adds them.
        const mid = tf.add(cache.get("resid_pre", i), cache.get("attn_out", i));
        same(mid, cache.get("resid_mid", i), `${m.source} resid_mid ${i}`);
        const post2 = tf.add(cache.get("resid_mid", i), cache.get("mlp_out", i));
        same(post2, cache.get("resid_post", i), `${m.source} resid_post = mid + mlp ${i}`);
        tf.dispose([mid, post2]);
        // Attention rows are distributions over the visible keys.
        const off = tf.tidy(() =>
          tf.max(tf.abs(tf.sub(tf.sum(cache.get("pattern", i), -1), 1))).dataSync()[0]
        );
        assert.ok(off < 1e-5, `${m.source} pattern rows sum to 1`);
        if (!c.sandwichNorms) {
          // hook_z is pre-o_proj: o_proj(z) + bias = attn_out.
          const z = cache.get("z", i);
          const o = tf.tidy(() => {
            let y: tf.Tensor = attnOutProject(c, m.params, i, tf.reshape(z, [b * t, -1]));
            const bias = attnOutBias(c, m.params, i);
            if (bias) y = tf.add(y, bias);
            return tf.reshape(y, [b, t, c.dModel]);
          });
          assert.ok(maxDiff(o, cache.get("attn_out", i)) < 1e-5, `${m.source} o_proj(z)`);
          o.dispose();
        }
      }
      same(cache.get("ln_final.hook_normalized"), f.hiddenStates[c.nLayer], `${m.source} ln_f`);
      same(cache.hiddenState(-1), f.hiddenStates[c.nLayer], `${m.source} hiddenState(-1)`);
    } finally {
      cache.dispose();
      tf.dispose([f.logits!, ...f.hiddenStates, f.finalResidual!]);
    }
    assert.equal(tf.memory().numTensors, before, `${m.source}: cache.dispose frees all`);
    assert.throws(() => cache.get("resid_pre", 0), /after dispose/);
    m.dispose();
  }
});

Deno.test("runWithCache: names filter with negative indices, short names, errors listing valid names", async () => {
  const m = await tinyModel("llama", 7);
  const n = m.config.nLayer;
  {
    using cache = m.runWithCache(IDS[0], { names: ["blocks.-1.hook_resid_post", "hook_embed"] });
    assert.deepEqual(cache.names, ["hook_embed", `blocks.${n - 1}.hook_resid_post`]);
    assert.equal(cache.get("resid_post", -1), cache.get(`blocks.${n - 1}.hook_resid_post`));
    assert.equal(cache.get("blocks.-1.hook_resid_post"), cache.get("resid_post", n - 1));
    assert.deepEqual(cache.get("embed").shape, [1, IDS[0].length, m.config.dModel]);
    assert.throws(() => cache.get("resid_pre", 0), /not cached.*held: hook_embed/);
  }
  assert.throws(
    () => m.runWithCache(IDS, { names: ["blocks.0.hook_resid_psot"] }),
    /unknown hook point 'blocks\.0\.hook_resid_psot'.*hook_resid_post/,
  );
  assert.throws(
    () => m.runWithCache(IDS, { names: [`blocks.${n}.hook_resid_pre`] }),
    /outside -2\.\.1/,
  );
  assert.throws(
    () => m.runWithCache(IDS, { names: ["hook_pos_embed"] }),
    /valid names: hook_embed,/,
  );
  assert.throws(() => actName("resid"), /valid: resid_pre/);
  assert.equal(actName("z", -2), "blocks.-2.attn.hook_z");
  assert.throws(() => actName("blocks.0.hook_resid_pre", 3), /full hook name; it takes no layer/);
  m.dispose();
});

Deno.test("runWithHooks: identity is bit-equal, ablation changes logits, hooks last one call, no leaks", async () => {
  for (const m of await models()) {
    const n = m.config.nLayer;
    const base = m.forward(IDS).logits!;
    const before = tf.memory().numTensors;
    let seen = 0;
    const id = m.runWithHooks(IDS, {
      hooks: {
        "blocks.1.hook_resid_post": (x) => tf.mul(x, 1),
        "blocks.-1.attn.hook_pattern": (_x, ctx) => {
          assert.equal(ctx.layer, n - 1);
          seen++;
        },
      },
    });
    same(id.logits!, base, `${m.source} identity hook`);
    assert.equal(seen, 1, "the negative-index hook fired once, on the last block");
    id.logits!.dispose();
    const ablated = m.runWithHooks(IDS, {
      hooks: [["blocks.0.hook_attn_out", (x) => tf.zerosLike(x)]],
    });
    assert.ok(
      maxDiff(ablated.logits!, base) > 1e-4,
      `${m.source}: zero-ablating attn_out moves logits`,
    );
    ablated.logits!.dispose();
    // A replaced pattern (every query attends to the first token only) also moves them.
    const uni = m.runWithHooks(IDS, {
      hooks: {
        "blocks.0.attn.hook_pattern": (x) => {
          const s = x.shape[3]!;
          return tf.broadcastTo(tf.oneHot([0], s).reshape([1, 1, 1, s]), x.shape);
        },
      },
    });
    assert.ok(maxDiff(uni.logits!, base) > 1e-4, `${m.source}: replacing the pattern moves logits`);
    uni.logits!.dispose();
    assert.equal(tf.memory().numTensors, before, `${m.source}: hooked calls leak no tensor`);
    const again = m.forward(IDS).logits!;
    same(again, base, `${m.source}: the next call runs without the hooks`);
    tf.dispose([again, base]);
    const before2 = tf.memory().numTensors;
    assert.throws(
      () => m.runWithHooks(IDS, { hooks: { "blocks.0.hook_z": () => undefined } }),
      /unknown hook point 'blocks\.0\.hook_z'.*attn\.hook_z/,
    );
    assert.throws(
      () =>
        m.runWithHooks(IDS, {
          hooks: { "blocks.0.hook_mlp_out": (x) => tf.slice(x, [0, 0, 0], [1, -1, -1]) },
        }),
      /hook on 'blocks\.0\.hook_mlp_out' returned shape \[1,6,16\], expected \[2,6,16\]/,
    );
    assert.equal(tf.memory().numTensors, before2, `${m.source}: a failing hook leaks no tensor`);
    m.dispose();
  }
});

Deno.test("hooks read the same activations with external (host-memory) weights", async () => {
  const src = await tinyModel("llama", 9);
  const dir = join(await Deno.makeTempDir(), "m");
  await src.save(dir);
  const heap = await loadModel(dir, { tokenizer: src.tokenizer, weights: "heap" });
  const ext = await loadModel(dir, { tokenizer: src.tokenizer, weights: "external" });
  assert.ok(ext.external && ext.external.size > 0);
  const before = tf.memory().numTensors;
  {
    using a = heap.runWithCache(IDS);
    using b = ext.runWithCache(IDS);
    for (const name of a.names) {
      assert.ok(maxDiff(a.get(name), b.get(name)) < 1e-4, `${name}: heap vs external`);
    }
    const hooked = ext.runWithHooks(IDS, {
      hooks: { "blocks.-1.hook_mlp_out": (x) => tf.zerosLike(x) },
    });
    assert.ok(maxDiff(hooked.logits!, b.logits!) > 1e-4);
    hooked.logits!.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "external-weight caches free everything");
  [src, heap, ext].forEach((m) => m.dispose());
  await Deno.remove(dir, { recursive: true });
});
