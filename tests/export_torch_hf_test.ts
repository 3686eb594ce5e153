/**
 * The hand-off to Python, checked end to end (issue 17 item 9): a compass fitted here and
 * exported with `exportCompassForTorch` must score the same rows the same way when a Python
 * user runs the generated `load_compass.py` with `transformers` on the same checkpoint.
 *
 * tests/ref/export_compass_ref.py builds random-weight Qwen3 and GPT-2 checkpoints with
 * transformers itself (the builders of tests/ref/hf_families.py), the toolkit loads each,
 * collects activations (pooling mean, last and mean-response), fits diffmean, logistic and
 * CRAFT compasses (at a middle block and at the last layer, which is after the final norm in
 * HF's numbering) and exports them; the same script then runs each generated `load_compass.py`
 * on the same token ids in a right-padded batch (`layer_output` -> `pool` -> `score`, as its
 * docstring tells users). p_safe must agree to 1e-4 (the max |diff| is printed per case), and
 * CRAFT's prototype cosines too.
 *
 * Python: env SAFETY_COMPASS_PYTHON, else `python3`, else /usr/bin/python3, the first that can
 * `import transformers, torch`; without one the suite skips with a message.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { findPython, numberTokenizer, TEST_BACKEND, useTestBackend } from "./_helpers.ts";
import { loadModel } from "../lib/model/load.ts";
import { collectActivations, encodeRow, type Pooling } from "../lib/compass/collect.ts";
import { fitCompass } from "../lib/compass/fit.ts";
import type { Compass, CompassMethod } from "../lib/compass/compass.ts";
import { exportCompassForTorch } from "../lib/compass/export_torch.ts";
import { makeRng } from "../lib/data/rng.ts";

await useTestBackend();

const TOL = 1e-4;
const SCRIPT = new URL("./ref/export_compass_ref.py", import.meta.url).pathname;
const CASES = ["qwen3", "gpt2"];
const POOLINGS: Pooling[] = ["mean", "last", "mean-response"];
const VOCAB = 96; // tests/ref/hf_families.py's vocabulary

async function python(py: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(py, {
    args: [SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { TRANSFORMERS_VERBOSITY: "error", TQDM_DISABLE: "1" },
  }).output();
  if (!r.success) {
    throw new Error(
      `export_compass_ref.py ${args[0]} failed:\n${new TextDecoder().decode(r.stderr)}`,
    );
  }
}

const PY = findPython();
if (!PY) {
  console.log(
    "export_torch_hf_test: skipped (no python with `import transformers, torch`; set " +
      "SAFETY_COMPASS_PYTHON or install torch and transformers)",
  );
}

/** 18 rows of random token ids: a prompt of 3-9 tokens and a trace of 2-10, labelled. */
function makeRows(seed: number) {
  const rng = makeRng(seed);
  const words = (n: number) => Array.from({ length: n }, () => 1 + rng.int(VOCAB - 2)).join(" ");
  const labels = ["safe", "unsafe", "rethink"];
  return Array.from({ length: 18 }, (_, i) => ({
    id: `r${i}`,
    prompt: words(3 + rng.int(7)),
    trace: words(2 + rng.int(9)),
    traceLabel: labels[i % 3],
  }));
}

Deno.test({
  name: "exportCompassForTorch: load_compass.py with transformers scores as the toolkit does",
  ignore: !PY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "sc-export-torch-" });
    try {
      await python(PY!, ["build", join(dir, "ckpt"), ...CASES]);
      const report: string[] = [];
      let worst = 0;
      for (const name of CASES) {
        const ckpt = join(dir, "ckpt", name);
        const model = await loadModel(ckpt, {
          tokenizer: numberTokenizer(VOCAB),
          backend: TEST_BACKEND,
        });
        try {
          const L = model.config.nLayer;
          const rows = makeRows(7);
          const fits: { method: CompassMethod; layer: number }[] = [
            { method: "diffmean", layer: 1 },
            { method: "logistic", layer: L },
            { method: "craft", layer: L },
            { method: "craft", layer: 1 },
          ];
          const compasses: { label: string; compass: Compass; folder: string; mine: number[] }[] =
            [];
          for (const pooling of POOLINGS) {
            const acts = await collectActivations(model, rows, {
              pooling,
              layers: [1, L],
              progress: "silent",
            });
            for (const f of fits) {
              const compass = fitCompass(acts, {
                method: f.method,
                layer: f.layer,
                seed: 0,
                craft: { hiddenDim: 64, embedDim: 16, epochs: 2, batchSize: 6 },
              });
              assert.equal(compass.pooling, pooling);
              const label = `${name} ${pooling} ${f.method}@${f.layer}`;
              const folder = join(dir, "compass", label.replace(/[^a-z0-9]+/gi, "_"));
              await exportCompassForTorch(compass, folder);
              const mine = Array.from(compass.score(acts.layer(f.layer)));
              compasses.push({ label, compass, folder, mine });
            }
          }
          // The exact ids the toolkit ran (no chat template here: the prompt then the trace).
          const enc = rows.map((r, i) => encodeRow(model, r, model.config.maxPositions, i));
          const job = join(dir, `${name}.job.json`);
          const out = join(dir, `${name}.out.json`);
          await Deno.writeTextFile(
            job,
            JSON.stringify({
              checkpoint: ckpt,
              rows: enc.map((e) => ({ ids: e.ids, responseStart: e.responseStart })),
              compasses: compasses.map((c) => c.folder),
            }),
          );
          await python(PY!, ["score", job, out]);
          const theirs: { scores: number[][]; cosines: (number[][] | null)[] } = JSON.parse(
            await Deno.readTextFile(out),
          );
          for (const [k, c] of compasses.entries()) {
            const py = theirs.scores[k];
            assert.equal(py.length, c.mine.length, `${c.label}: rows scored in Python`);
            let d = Math.max(...py.map((v, i) => Math.abs(v - c.mine[i])));
            const spread = Math.max(...c.mine) - Math.min(...c.mine);
            let extra = "";
            if (c.compass.cosines) {
              const acts = await collectActivations(model, rows, {
                pooling: c.compass.pooling,
                layers: [c.compass.layer],
                progress: "silent",
              });
              const cos = c.compass.cosines(acts.layer(c.compass.layer));
              const pyCos = theirs.cosines[k]!;
              const dc = Math.max(
                ...pyCos.flatMap((r, i) => [
                  Math.abs(r[0] - cos.safe[i]),
                  Math.abs(r[1] - cos.unsafe[i]),
                  Math.abs(r[2] - cos.rethink[i]),
                ]),
              );
              extra = `, cosines ${dc.toExponential(2)}`;
              d = Math.max(d, dc);
            }
            report.push(
              `  ${c.label}: max |p_safe diff| ${d.toExponential(2)}${extra} ` +
                `(p_safe spread ${spread.toFixed(3)}; tol ${TOL})`,
            );
            worst = Math.max(worst, d);
            assert.ok(
              d <= TOL,
              `${c.label}: Python's p_safe differs by ${d}\n${report.join("\n")}`,
            );
          }
        } finally {
          model.dispose();
        }
      }
      console.log(report.join("\n"));
      console.log(`  worst max |diff| ${worst.toExponential(2)} (tol ${TOL})`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
