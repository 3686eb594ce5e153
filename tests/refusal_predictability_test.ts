/**
 * refusalPredictability on the shipped toy-shallow: the chosen layer's held-out AUROC is the
 * best of all layers (ties broken by Cohen's d); its score equals an independent difference of means computed here
 * (Pearson r of 1 with it), so a harmful rate built as that score gives r = 1 across prompts
 * and, within templates, the r of the hand-centred values; the within-template correlation
 * drops single-prompt templates; bad input names what is wrong.
 */
import assert from "node:assert/strict";
import { useTestBackend } from "./_helpers.ts";
import { loadModel } from "../lib/model/load.ts";
import { generateWorld } from "../lib/data/safetyworld/generate.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import type { Matrix } from "../lib/compass/matrix.ts";
import { auroc, pearsonCI, separation } from "../lib/compass/metrics.ts";
import { refusalPredictability } from "../lib/eval/refusal_predictability.ts";

await useTestBackend();

Deno.test("refusalPredictability: best layer, an independent diff-of-means score, hand-centred within-template r", async () => {
  const m = await loadModel("toy-shallow");
  try {
    const world = generateWorld({ seed: 0 });
    const pick = (split: string, kind: string, n: number) =>
      world.prompts.filter((p) => p.split === split && p.kind === kind).slice(0, n);
    const fit = [...pick("train", "harmful", 24), ...pick("train", "task", 24)];
    const heldOut = [...pick("test", "harmful", 16), ...pick("test", "task", 16)];
    const attacked = pick("test", "harmful", 40);
    const probe = await refusalPredictability(m, {
      fit,
      heldOut,
      attacked,
      harmfulRate: attacked.map(() => 0.5),
    });
    assert.ok(probe.layer >= 1 && probe.layer <= m.config.nLayer, `layer ${probe.layer}`);

    // Independent: r = mean(harmful) - mean(benign) at every layer, score = x . r.
    const opts = { pooling: "last" as const, progress: "silent" as const };
    const acts = async (rows: typeof fit) =>
      await collectActivations(m, rows.map((r) => ({ prompt: r.prompt })), opts);
    const [fa, ha, aa] = [await acts(fit), await acts(heldOut), await acts(attacked)];
    const scoreAt = (layer: number) => {
      const x = fa.layer(layer), d = x.cols;
      const dir = new Float64Array(d);
      fit.forEach((r, i) => {
        const s = r.kind === "harmful" ? 1 / 24 : -1 / 24;
        for (let j = 0; j < d; j++) dir[j] += s * x.data[i * d + j];
      });
      return (mat: Matrix) =>
        Array.from({ length: mat.rows }, (_, i) => {
          let t = 0;
          for (let j = 0; j < d; j++) t += mat.data[i * d + j] * dir[j];
          return t;
        });
    };
    const isHarmful = heldOut.map((r) => r.kind === "harmful");
    const layers = Array.from({ length: m.config.nLayer }, (_, i) => {
      const held = scoreAt(i + 1)(ha.layer(i + 1));
      return { layer: i + 1, auc: auroc(held, isHarmful), d: separation(held, isHarmful) };
    });
    // highest AUROC; among equal AUROCs (several layers separate perfectly) the widest Cohen's d
    const top = Math.max(...layers.map((l) => l.auc));
    const best = layers.filter((l) => Math.abs(l.auc - top) < 1e-9).sort((a, b) => b.d - a.d)[0];
    assert.ok(Math.abs(probe.auroc - top) < 1e-6, `${probe.auroc} vs ${top}`);
    assert.equal(probe.layer, best.layer, JSON.stringify(layers));
    const score = scoreAt(probe.layer)(aa.layer(probe.layer));

    // A harmful "rate" equal to the independent score: r = 1 across prompts.
    const res = await refusalPredictability(m, { fit, heldOut, attacked, harmfulRate: score });
    assert.ok(res.across.pearson > 0.9999, `across r ${res.across.pearson}`);
    assert.equal(res.across.n, attacked.length);

    // Within templates: a rate with a template-level offset and noise, centred by hand.
    const tpl = attacked.map((r) => r.templateId);
    const offset = new Map([...new Set(tpl)].map((t, k) => [t, 10 * k]));
    const rate = score.map((s, i) => offset.get(tpl[i])! + Math.sin(7 * i) * 0.5 - s);
    const got = await refusalPredictability(m, { fit, heldOut, attacked, harmfulRate: rate });
    const count = new Map<string, number>();
    tpl.forEach((t) => count.set(t, (count.get(t) ?? 0) + 1));
    const keep = tpl.map((t) => count.get(t)! >= 2);
    const centre = (v: number[]) => {
      const mean = new Map<string, number>();
      for (const t of count.keys()) {
        const idx = tpl.flatMap((u, i) => (u === t ? [i] : []));
        mean.set(t, idx.reduce((a, i) => a + v[i], 0) / idx.length);
      }
      return v.map((x, i) => x - mean.get(tpl[i])!).filter((_, i) => keep[i]);
    };
    const want = pearsonCI(centre(score), centre(rate));
    assert.ok(
      Math.abs(got.within.pearson - want.value) < 1e-4,
      `${got.within.pearson} vs ${want.value}`,
    );
    assert.equal(got.within.n, keep.filter(Boolean).length);
    assert.equal(got.templates, [...count.values()].filter((c) => c >= 2).length);
    assert.ok(got.within.pearson < 0, "rate falls as the score rises within each template");

    await assert.rejects(
      refusalPredictability(m, { fit, heldOut, attacked, harmfulRate: [0.5] }),
      /40 attacked prompts but 1 harmful rates/,
    );
    await assert.rejects(
      refusalPredictability(m, {
        fit: pick("train", "task", 8),
        heldOut,
        attacked,
        harmfulRate: score,
      }),
      /fit needs both harmful and benign prompts \(has 0 harmful of 8\)/,
    );
  } finally {
    m.dispose();
  }
});
