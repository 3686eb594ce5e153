/**
 * Named activations against Hugging Face `transformers` (skips with a message when python
 * or transformers is absent): `blocks.{i}.attn.hook_pattern` equals `output_attentions` and
 * `blocks.{i}.attn.hook_z` (flattened) equals the input of each block's attention output
 * projection, captured by a torch pre-hook, on tiny random GPT-2 and Llama (GQA) models the
 * toolkit saved.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { findPython, maxAbsDiff, tinyModel, useTestBackend } from "./_helpers.ts";
import type { Arch } from "../lib/model/config.ts";

await useTestBackend();
const PY = findPython();
const REF = new URL("./ref/hooks_ref.py", import.meta.url).pathname;

for (const arch of ["gpt2", "llama"] as Arch[]) {
  Deno.test({
    name: `${arch}: hook_pattern = HF output_attentions, hook_z = o_proj's input (transformers)`,
    ignore: PY === undefined,
    fn: async () => {
      const m = await tinyModel(arch, 12);
      // Larger weights than the init so the attention is far from uniform.
      for (const [, v] of m.params) if (v.shape.length === 2) v.assign(tf.mul(v, 8));
      const dir = await Deno.makeTempDir();
      try {
        await m.save(join(dir, "m"));
        const ids = [[3, 1, 4, 1, 5, 9, 2], [6, 5, 3, 5, 8, 9, 7]];
        await Deno.writeTextFile(join(dir, "ids.json"), JSON.stringify(ids));
        const r = await new Deno.Command(PY!, {
          args: [REF, join(dir, "m"), join(dir, "ids.json"), join(dir, "out.json")],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(r.success, `hooks_ref.py failed:\n${new TextDecoder().decode(r.stderr)}`);
        const ref = JSON.parse(await Deno.readTextFile(join(dir, "out.json")));
        using cache = m.runWithCache(ids);
        const c = m.config;
        let worstP = 0, worstZ = 0;
        for (let i = 0; i < c.nLayer; i++) {
          worstP = Math.max(
            worstP,
            maxAbsDiff(cache.get("pattern", i).arraySync(), ref.attentions[i]),
          );
          const z = tf.tidy(() => tf.reshape(cache.get("z", i), [2, 7, -1]).arraySync());
          worstZ = Math.max(worstZ, maxAbsDiff(z, ref.o_proj_in[i]));
        }
        const worstL = maxAbsDiff(cache.logits!.arraySync(), ref.logits);
        console.log(
          `${arch}: max |diff| pattern ${worstP.toExponential(2)}, z ${
            worstZ.toExponential(2)
          }, logits ${worstL.toExponential(2)}`,
        );
        assert.ok(worstP < 1e-5, `pattern vs output_attentions: ${worstP}`);
        assert.ok(worstZ < 1e-4, `z vs o_proj input: ${worstZ}`);
        assert.ok(worstL < 1e-3, `logits: ${worstL}`);
      } finally {
        m.dispose();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

if (PY === undefined) {
  console.log("hooks_hf_test: skipped (no python with transformers and torch)");
}
