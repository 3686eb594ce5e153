import * as tf from "@tensorflow/tfjs-core";
import { tinyModel, useTestBackend } from "./tests/_helpers.ts";
import { encodeMasked, type MaskedExample, padMasked, trainTokenwise } from "./lib/train/tokenwise.ts";
import type { Model } from "./lib/model/model.ts";
import { makeRng } from "./lib/data/rng.ts";
await useTestBackend();
Deno.env.set("SAFETY_COMPASS_QUIET", "1");
function data(n: number, seed: number, kind: string): MaskedExample[] {
  const rng = makeRng(seed);
  return Array.from({ length: n }, () => {
    const xs = Array.from({ length: 8 }, () => 1 + rng.int(25));
    const ys = kind === "shift" ? xs.map((x) => x + 1) : kind === "const" ? xs.map((_, i) => 30 + i) : xs.slice().reverse();
    return { prompt: xs.join(" "), response: ys.join(" ") };
  });
}
function klByPos(m: Model, ref: Model, ex: MaskedExample[]): number[] {
  const enc = encodeMasked(m, ex);
  const batch = padMasked(enc, 0);
  return tf.tidy(() => {
    const la = tf.logSoftmax(m.forward(batch.ids, { attentionMask: batch.attentionMask }).logits!);
    const lb = tf.logSoftmax(ref.forward(batch.ids, { attentionMask: batch.attentionMask }).logits!);
    const kl = tf.sum(tf.mul(tf.exp(la), tf.sub(la, lb)), -1).arraySync() as number[][];
    const start = enc[0].respPos.indexOf(1);
    return Array.from({ length: 8 }, (_, j) => kl.reduce((s, r) => s + r[start + j - 1], 0) / kl.length);
  });
}
const [refKind, ftKind, steps, lr] = [Deno.args[0], Deno.args[1], Number(Deno.args[2]), Number(Deno.args[3])];
const aligned = await tinyModel("gpt2", 11);
if (refKind !== "none") await trainTokenwise(aligned, data(256, 1, refKind), { objective: "sft", steps: 60, batchSize: 32, lr: 1e-2 });
const copy = async () => { const m = await tinyModel("gpt2", 11); for (const [n, v] of aligned.params) m.params.get(n)!.assign(v); return m; };
const sft = await copy(); const tok = await copy();
const ft = data(512, 2, ftKind);
await trainTokenwise(sft, ft, { steps, batchSize: 32, lr, seed: 4, objective: "sft" });
await trainTokenwise(tok, ft, { steps, batchSize: 32, lr, seed: 4 });
const held = data(64, 3, ftKind);
console.log(refKind, ftKind, steps, lr);
console.log("sft", klByPos(sft, aligned, held).map((x) => x.toFixed(2)).join(" "));
console.log("tok", klByPos(tok, aligned, held).map((x) => x.toFixed(2)).join(" "));
