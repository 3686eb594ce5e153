/**
 * Parity with an independent implementation: the same random weights, saved in the Hugging
 * Face layout, run through tests/ref/hf_reference.py (plain PyTorch written from the HF
 * modeling semantics). Covers GPT-2, Llama with grouped-query attention, Qwen2-style q/k/v
 * biases, tied and untied heads, a left-padded batch, and every hidden state (HF's
 * output_hidden_states convention: the last one after the final norm). Skips with a
 * message where Debian's python3-torch is absent (CI installs it).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { numberTokenizer, TEST_BACKEND, useTestBackend } from "./_helpers.ts";
import { createModel } from "../lib/model/create.ts";
import type { ConfigSpec } from "../lib/model/config.ts";

await useTestBackend();

const PY = "/usr/bin/python3";
const REF = new URL("./ref/hf_reference.py", import.meta.url).pathname;
const hasTorch = (() => {
  try {
    return new Deno.Command(PY, { args: ["-c", "import torch"], stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();
if (!hasTorch) console.log("parity_torch_test: skipped (no python3-torch at /usr/bin/python3)");

const CASES: [string, ConfigSpec][] = [
  ["gpt2", { arch: "gpt2", vocabSize: 50, nLayer: 2, dModel: 24, nHead: 4, maxPositions: 32 }],
  ["gpt2 untied", {
    arch: "gpt2",
    vocabSize: 50,
    nLayer: 1,
    dModel: 16,
    nHead: 2,
    maxPositions: 32,
    tieWordEmbeddings: false,
  }],
  ["llama GQA", {
    arch: "llama",
    vocabSize: 50,
    nLayer: 2,
    dModel: 32,
    nHead: 4,
    nKvHead: 2,
    dFf: 48,
    ropeTheta: 10000,
  }],
  ["qwen2-style bias, tied, MHA", {
    arch: "llama",
    vocabSize: 50,
    nLayer: 2,
    dModel: 16,
    nHead: 2,
    nKvHead: 2,
    dFf: 40,
    attnBias: true,
    tieWordEmbeddings: true,
    ropeTheta: 1e6,
    modelType: "qwen2",
  }],
  ["llama attention_bias (q/k/v/o biases)", {
    arch: "llama",
    vocabSize: 50,
    nLayer: 1,
    dModel: 16,
    nHead: 4,
    nKvHead: 1,
    dFf: 24,
    attnBias: true,
  }],
];

for (const [name, spec] of CASES) {
  Deno.test(
    { name: `parity with PyTorch (HF semantics): ${name}`, ignore: !hasTorch },
    async () => {
      const m = await createModel(spec, {
        tokenizer: numberTokenizer(50),
        seed: 11,
        backend: TEST_BACKEND,
      });
      // Non-trivial norms and biases, so their layout is exercised too.
      for (const [n, v] of m.params) {
        if (/(ln_|norm|bias)/.test(n)) {
          v.assign(tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.1, "float32", 5))));
        }
      }
      const dir = await Deno.makeTempDir();
      await m.save(dir);
      const ids = [[3, 9, 14, 2, 44, 7, 1], [0, 0, 5, 6, 31, 8, 12]];
      const mask = [[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]];
      await Deno.writeTextFile(
        join(dir, "ids.json"),
        JSON.stringify({ input_ids: ids, attention_mask: mask }),
      );
      const out = await new Deno.Command(PY, {
        args: [REF, dir, join(dir, "ids.json"), join(dir, "out.json")],
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const ref = JSON.parse(await Deno.readTextFile(join(dir, "out.json")));
      const f = m.forward(ids, { attentionMask: mask, hiddenStates: "all" });
      const logits = (await f.logits!.array()) as number[][][];
      let worst = 0;
      let worstHidden = 0;
      for (let b = 0; b < ids.length; b++) {
        for (let t = 0; t < ids[b].length; t++) {
          if (mask[b][t] === 0) continue; // padded queries are implementation-defined
          for (let v = 0; v < 50; v++) {
            worst = Math.max(worst, Math.abs(logits[b][t][v] - ref.logits[b][t][v]));
          }
        }
      }
      for (let l = 0; l <= spec.nLayer; l++) {
        const h = (await f.hiddenStates[l].array()) as number[][][];
        for (let b = 0; b < ids.length; b++) {
          for (let t = 0; t < ids[b].length; t++) {
            if (mask[b][t] === 0) {
              continue;
            }
            h[b][t].forEach((x, j) =>
              worstHidden = Math.max(worstHidden, Math.abs(x - ref.hidden_states[l][b][t][j]))
            );
          }
        }
      }
      console.log(
        `  ${name}: max |logits diff| ${worst.toExponential(2)}, hidden ${
          worstHidden.toExponential(2)
        } (tol 1e-4)`,
      );
      assert.ok(worst < 1e-4, `logits differ by ${worst}`);
      assert.ok(worstHidden < 1e-4, `hidden states differ by ${worstHidden}`);
      tf.dispose([f.logits!, ...f.hiddenStates]);
      m.dispose();
      await Deno.remove(dir, { recursive: true });
    },
  );
}
