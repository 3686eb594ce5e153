import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { tinyModel, useTestBackend } from "./_helpers.ts";
import {
  betas,
  encodeMasked,
  type MaskedExample,
  padMasked,
  tokenwiseLoss,
  trainTokenwise,
} from "../lib/train/tokenwise.ts";
import type { Model } from "../lib/model/model.ts";
import { makeRng } from "../lib/data/rng.ts";
import { removeCheckpoint } from "../lib/io/checkpoint_dir.ts";

await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (|diff| ${Math.abs(a - b)} > ${tol})`);

Deno.test("betas follow Qi et al.: 0.5 at t=1, 2 for t=2..5, 0.1 after", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 40].map(betas), [0.5, 2, 2, 2, 2, 0.1, 0.1, 0.1]);
  assert.throws(() => betas(0), /t counts response tokens from 1/);
});

Deno.test("tokenwise loss equals hand-computed values", () => {
  // Token 1: beta 0.5, delta 0 -> -(2/0.5) ln(1/2) = 4 ln 2 = 2.772589.
  // Token 2: beta 2, delta = ln 3 -> sigmoid(2 ln 3) = 9 / (9 + 1) = 0.9 -> -ln 0.9 = 0.105361.
  // Token 3: beta 0.1 (t = 6), delta = -10 -> -(2/0.1) ln sigmoid(-1) = 20 * 1.313262 = 26.26523.
  // Token 4: masked out (any value). Mean over 3 target tokens.
  const logp = tf.tensor2d([[-1, Math.log(3) - 2, -12, -5]]);
  const ref = tf.tensor2d([[-1, -2, -2, -0.1]]);
  const mask = [[1, 1, 1, 0]];
  const pos = [[1, 2, 6, 7]];
  const want = (4 * Math.LN2 - Math.log(0.9) + 20 * Math.log(1 + Math.E)) / 3;
  const got = tokenwiseLoss(logp, ref, mask, pos).dataSync()[0];
  console.log(`  loss ${got.toFixed(6)} vs hand ${want.toFixed(6)}`);
  close(got, want, 1e-4, "tokenwise loss");
  // A constant beta reduces per token to (2/beta) softplus(-beta delta).
  const flat = tokenwiseLoss(logp, ref, [[0, 1, 0, 0]], pos, () => 1).dataSync()[0];
  close(flat, 2 * Math.log(1 + 1 / 3), 1e-5, "beta=1 loss");
  tf.dispose([logp, ref]);
});

Deno.test("at pi_theta = pi_ref the tokenwise gradient equals the SFT gradient (any beta)", () => {
  // d/d delta [-(2/b) log sigmoid(b delta)] = -2 sigmoid(-b delta) = -1 at delta = 0, so
  // grad L = -(1/N) sum_t grad log pi(y_t): the gradient of the token-mean NLL.
  const rng = makeRng(3);
  const [B, T, V] = [2, 5, 7];
  const logits = tf.variable(tf.tensor3d(
    Array.from({ length: B * T * V }, () => 2 * rng.normal()),
    [B, T, V],
  ));
  const targets = Array.from({ length: B * T }, () => rng.int(V));
  const mask = [[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]];
  const pos = [[1, 2, 3, 6, 0], [0, 1, 4, 5, 9]];
  const logpOf = () =>
    tf.reshape(
      tf.gather(
        tf.reshape(tf.logSoftmax(logits), [-1]),
        tf.tensor1d(targets.map((t, i) => i * V + t), "int32"),
      ),
      [B, T],
    ) as tf.Tensor2D;
  const ref = tf.tidy(() => logpOf());
  const m = tf.tensor2d(mask);
  const gTok = tf.grad(() => tokenwiseLoss(logpOf(), ref, mask, pos))(logits);
  const gSft = tf.grad(() => tf.div(tf.neg(tf.sum(tf.mul(logpOf(), m))), tf.sum(m)))(logits);
  const diff = tf.max(tf.abs(tf.sub(gTok, gSft))).dataSync()[0];
  const scale = tf.max(tf.abs(gSft)).dataSync()[0];
  console.log(`  max |grad tokenwise - grad sft| = ${diff.toExponential(2)} (grad scale ${scale})`);
  assert.ok(scale > 1e-3, "the SFT gradient should not vanish");
  assert.ok(diff < 1e-6, `gradients differ by ${diff}`);
  // Away from the reference the weight is 2 sigmoid(-beta delta): d loss / d logp.
  const lp = tf.tensor2d([[0.7, -0.4]]);
  const r0 = tf.zeros([1, 2]) as tf.Tensor2D;
  const g = tf.grad((x: tf.Tensor) => tokenwiseLoss(x as tf.Tensor2D, r0, [[1, 1]], [[1, 3]]))(lp)
    .dataSync();
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  close(g[0], -2 * sig(-0.5 * 0.7) / 2, 1e-6, "grad at t=1");
  close(g[1], -2 * sig(-2 * -0.4) / 2, 1e-6, "grad at t=3");
  tf.dispose([logits, ref, m, gTok, gSft, lp, r0]);
});

Deno.test("masks: lossFromToken skips the first response tokens; segments mask theirs", async () => {
  const m = await tinyModel("gpt2", 2);
  const ex: MaskedExample[] = [
    { prompt: "5 6", response: "7 8 9 10", lossFromToken: 2 },
    {
      prompt: "5",
      response: "7 8 9",
      segments: [{ text: "7", loss: true }, { text: "8 9", loss: false }, {
        text: "10 11",
        loss: true,
      }],
    },
  ];
  const [a, b] = encodeMasked(m, ex);
  // Prompt "5 6" is 2 tokens; response 7 8 9 10 + eos(39); first 2 response tokens skipped.
  assert.deepEqual(a.seq, [5, 6, 7, 8, 9, 10, 39]);
  assert.deepEqual(a.mask, [0, 0, 0, 0, 1, 1, 1]);
  assert.deepEqual(a.respPos, [0, 0, 1, 2, 3, 4, 5]);
  assert.deepEqual(b.seq, [5, 7, 8, 9, 10, 11, 39]);
  assert.deepEqual(b.mask, [0, 1, 0, 0, 1, 1, 1]);
  const batch = padMasked([a, b], 0);
  assert.deepEqual(batch.lossMask[1], b.mask);
  assert.deepEqual(batch.attentionMask[1], [1, 1, 1, 1, 1, 1, 1]);
  assert.throws(
    () => encodeMasked(m, [{ prompt: "1", response: "2", lossFromToken: 5 }]),
    /lossFromToken=5 but the response has 2 tokens/,
  );
  m.dispose();
});

/** Prompts of 8 numbers; response: a fixed answer 30..37 ("const") or the numbers + 1. */
function data(n: number, seed: number, kind: "const" | "shift"): MaskedExample[] {
  const rng = makeRng(seed);
  return Array.from({ length: n }, () => {
    const xs = Array.from({ length: 8 }, () => 1 + rng.int(25));
    const ys = kind === "shift" ? xs.map((x) => x + 1) : xs.map((_, i) => 30 + i);
    return { prompt: xs.join(" "), response: ys.join(" ") };
  });
}

/** Mean KL(pi || ref) at response positions t = 1..8, teacher-forced on `ex`. */
function klByPos(m: Model, ref: Model, ex: MaskedExample[]): number[] {
  const enc = encodeMasked(m, ex);
  const batch = padMasked(enc, 0);
  return tf.tidy(() => {
    const f = (x: Model) =>
      tf.logSoftmax(x.forward(batch.ids, { attentionMask: batch.attentionMask }).logits!);
    const [la, lb] = [f(m), f(ref)];
    const kl = tf.sum(tf.mul(tf.exp(la), tf.sub(la, lb)), -1).arraySync() as number[][];
    const start = enc[0].respPos.indexOf(1); // every prompt has 8 tokens here
    // The distribution predicting response token t sits at sequence position start + t - 2.
    return Array.from(
      { length: 8 },
      (_, j) => kl.reduce((s, r) => s + r[start + j - 1], 0) / kl.length,
    );
  });
}

Deno.test("token-wise training keeps early tokens closer to the reference than plain SFT", async () => {
  // The reference is the starting model; fine-tuning teaches a new fixed answer. Plain SFT
  // moves every position alike; the token-wise objective holds t = 2..5 (beta 2) near the
  // reference, t = 1 (beta 0.5) less so, and lets t >= 6 (beta 0.1) move like SFT.
  const ref = await tinyModel("gpt2", 11);
  const sft = await tinyModel("gpt2", 11);
  const tok = await tinyModel("gpt2", 11);
  const ft = data(512, 2, "const");
  const opts = { steps: 60, batchSize: 32, lr: 5e-3, seed: 4 };
  const tensors = tf.memory().numTensors;
  await trainTokenwise(sft, ft, { ...opts, objective: "sft" });
  await trainTokenwise(tok, ft, opts);
  assert.equal(tf.memory().numTensors, tensors, "trainTokenwise leaked tensors");
  const held = data(64, 3, "const");
  const [kSft, kTok] = [klByPos(sft, ref, held), klByPos(tok, ref, held)];
  const mean = (k: number[], a: number, b: number) =>
    k.slice(a - 1, b).reduce((x, y) => x + y, 0) / (b - a + 1);
  console.log(`  KL(pi || ref) at t=1..8, SFT:       ${kSft.map((x) => x.toFixed(2)).join(" ")}`);
  console.log(`  KL(pi || ref) at t=1..8, tokenwise: ${kTok.map((x) => x.toFixed(2)).join(" ")}`);
  assert.ok(mean(kSft, 1, 8) > 0.5, `plain SFT should move away from the reference: ${kSft}`);
  assert.ok(
    mean(kTok, 2, 5) < 0.5 * mean(kSft, 2, 5),
    `t=2..5: tokenwise ${mean(kTok, 2, 5)} vs SFT ${mean(kSft, 2, 5)}`,
  );
  assert.ok(kTok[0] < kSft[0], `t=1: tokenwise ${kTok[0]} vs SFT ${kSft[0]}`);
  assert.ok(
    mean(kTok, 6, 8) > 0.75 * mean(kSft, 6, 8),
    `t>=6 should move like SFT: tokenwise ${mean(kTok, 6, 8)} vs SFT ${mean(kSft, 6, 8)}`,
  );
  [ref, sft, tok].forEach((m) => m.dispose());
});

Deno.test("tokenwise training resumes exactly, reference included", async () => {
  const dir = await Deno.makeTempDir();
  const ex = data(64, 5, "shift");
  const opts = { steps: 8, batchSize: 8, lr: 3e-3, seed: 2, checkpointEvery: 4 };
  const a = await tinyModel("gpt2", 6);
  const full = await trainTokenwise(a, ex, opts);
  const b = await tinyModel("gpt2", 6);
  await trainTokenwise(b, ex, { ...opts, checkpointDir: dir, stopAfter: 4 });
  const c = await tinyModel("gpt2", 6);
  const resumed = await trainTokenwise(c, ex, { ...opts, checkpointDir: dir, resume: true });
  assert.deepEqual(resumed.history.map((r) => r.loss), full.history.map((r) => r.loss));
  for (const [name, v] of a.params) {
    assert.deepEqual(Array.from(c.params.get(name)!.dataSync()), Array.from(v.dataSync()), name);
  }
  [a, b, c].forEach((m) => m.dispose());
  await removeCheckpoint(dir);
});
