/**
 * The cost of the NaN guard's finiteness check after every update (`AdamW.nonFinite`): the
 * median time of one SFT step (forward, backward, clip, AdamW) beside the check's, for the
 * SafetyWorld shape (GPT-2 layout, 4 layers, d=128, 640 tokens; batch 32 x 64) and a
 * GPT-2-medium-width slice (2 layers, d=1024), heap and host optimiser state.
 *
 * Heap state: the check is one `sum(x * 0)` per weight and moment tensor and one read.
 * Host state: the check rides along in the update loop (three float64 sums); measured as
 * the update's time with and without them (`--old PATH` names a copy of adamw.ts from before
 * the check, e.g. `git show 3e60237:lib/optim/adamw.ts > lib/optim/_adamw_old.ts`).
 *
 * `deno run -A bench/finite_check.ts [--old lib/optim/_adamw_old.ts]`
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import { createModel } from "../lib/model/create.ts";
import { lmLoss } from "../lib/optim/loss.ts";
import { AdamW, type StateLocation } from "../lib/optim/adamw.ts";
import { GradientAccumulator } from "../lib/optim/accumulate.ts";
import { trainableVariables } from "../lib/model/lora.ts";
import { numberTokenizer } from "./common.ts";

const oldPath = Deno.args.includes("--old") ? Deno.args[Deno.args.indexOf("--old") + 1] : "";
const Old = oldPath
  ? ((await import(new URL(`../${oldPath}`, import.meta.url).href)) as { AdamW: typeof AdamW })
    .AdamW
  : undefined;

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[s.length >> 1];
}

const shapes = [
  { name: "safetyworld", vocab: 640, nLayer: 4, dModel: 128, b: 32, t: 64 },
  { name: "wide (d=1024)", vocab: 640, nLayer: 2, dModel: 1024, b: 4, t: 32 },
];

for (const s of shapes) {
  const model = await createModel(
    {
      arch: "gpt2",
      vocabSize: s.vocab,
      nLayer: s.nLayer,
      dModel: s.dModel,
      nHead: 4,
      maxPositions: 128,
    },
    { tokenizer: numberTokenizer(s.vocab), seed: 1, backend: "wasm" },
  );
  const vars = trainableVariables(model);
  const ids = Array.from(
    { length: s.b },
    (_, i) => Array.from({ length: s.t }, (_, j) => 1 + ((i * 7 + j * 13) % (s.vocab - 2))),
  );
  const batch = {
    ids,
    attentionMask: ids.map((r) => r.map(() => 1)),
    lossMask: ids.map((r) => r.map((_, j) => (j > 4 ? 1 : 0))),
  };
  for (const location of ["heap", "host"] as StateLocation[]) {
    const opt = new AdamW({ lr: 1e-5, stateLocation: location });
    const old = Old ? new Old({ lr: 1e-5, stateLocation: location }) : undefined;
    const acc = new GradientAccumulator(vars, location);
    const step: number[] = [], check: number[] = [], apply: number[] = [], applyOld: number[] = [];
    for (let k = 0; k < 12; k++) {
      const t0 = performance.now();
      await acc.accumulate([{ batch, weight: 1 }], (x) => lmLoss(model.config, model.params, x));
      const t1 = performance.now();
      await acc.apply(opt, { clip: 1 });
      const t2 = performance.now();
      await opt.nonFinite(vars);
      const t3 = performance.now();
      if (old) {
        await acc.accumulate([{ batch, weight: 1 }], (x) => lmLoss(model.config, model.params, x));
        const t4 = performance.now();
        await acc.apply(old, { clip: 1 });
        applyOld.push(performance.now() - t4);
      }
      if (k >= 2) (step.push(t2 - t0), apply.push(t2 - t1), check.push(t3 - t2));
    }
    const st = median(step), ck = median(check);
    console.log(
      `${s.name} (${(model.numParams / 1e6).toFixed(2)}M params), ${location}: step ${
        st.toFixed(1)
      } ms, update ${median(apply).toFixed(1)} ms` +
        (old ? ` (before the check: ${median(applyOld).toFixed(1)} ms)` : "") +
        `, check ${ck.toFixed(2)} ms = ${((100 * ck) / st).toFixed(1)}% of a step`,
    );
    acc.dispose();
    opt.dispose();
    old?.dispose();
  }
  model.dispose();
  tf.disposeVariables();
}
