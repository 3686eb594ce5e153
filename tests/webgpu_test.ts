/**
 * The webgpu backend path: forward, KV-cached generation and one gradient on Deno's WebGPU,
 * compared with the cpu backend. Runs on a real GPU, or on Mesa's lavapipe (a CPU Vulkan
 * adapter: slow, but the same code path) when XDG_RUNTIME_DIR and a Vulkan driver exist;
 * skips with a message otherwise.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { maxAbsDiff, numberTokenizer } from "./_helpers.ts";
import { createModel } from "../lib/model/create.ts";
import { lmLoss, padBatch } from "../lib/optim/loss.ts";

async function adapterAvailable(): Promise<string | undefined> {
  if (!Deno.env.get("XDG_RUNTIME_DIR")) return undefined;
  const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
  const adapter = await gpu?.requestAdapter().catch(() => null);
  return adapter
    ? `${adapter.info?.vendor ?? ""} ${adapter.info?.description ?? ""}`.trim()
    : undefined;
}
const adapter = await adapterAvailable();
if (!adapter) console.log("webgpu_test: skipped (no XDG_RUNTIME_DIR or no WebGPU adapter)");

Deno.test(
  { name: "webgpu backend matches cpu: forward, generation, gradient", ignore: !adapter },
  async () => {
    console.log(`  adapter: ${adapter}`);
    const spec = {
      arch: "llama" as const,
      vocabSize: 40,
      nLayer: 2,
      dModel: 16,
      nHead: 4,
      nKvHead: 2,
      dFf: 24,
    };
    const out: { logits: number[][][]; tokens: number[][]; grad: number[] }[] = [];
    for (const backend of ["cpu", "webgpu"] as const) {
      const m = await createModel(spec, {
        tokenizer: numberTokenizer(40),
        seed: 31,
        backend,
        allowSoftwareGpu: true,
      });
      assert.equal(tf.getBackend(), backend);
      const f = m.forward([[3, 1, 4, 1, 5, 9, 2, 6]]);
      const logits = (await f.logits!.array()) as number[][][];
      f.logits!.dispose();
      const g = await m.generate({
        inputIds: [[3, 1, 4], [1, 5]],
        maxNewTokens: 5,
        stopAtEos: false,
      });
      const w = m.params.get("model.layers.0.mlp.up_proj.weight")!;
      const { grads, value } = tf.variableGrads(
        () => lmLoss(m.config, m.params, padBatch([[1, 2, 3, 4, 5]], [1])),
        [w],
      );
      out.push({ logits, tokens: g.tokenIds, grad: Array.from(await grads[w.name].data()) });
      tf.dispose([value, ...Object.values(grads)]);
      m.dispose();
    }
    const d = maxAbsDiff(out[0].logits, out[1].logits);
    const dg = maxAbsDiff(out[0].grad, out[1].grad);
    console.log(`  webgpu vs cpu: logits ${d.toExponential(2)}, gradient ${dg.toExponential(2)}`);
    assert.ok(d < 1e-3, `logits differ by ${d}`);
    assert.ok(dg < 1e-3, `gradients differ by ${dg}`);
    assert.deepEqual(out[1].tokens, out[0].tokens);
  },
);
