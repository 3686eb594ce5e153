import { createModel } from "../lib/model/create.ts";
import { numberTokenizer, TEST_BACKEND } from "./_helpers.ts";
import { collectActivations } from "../lib/compass/collect.ts";
import { makeRng } from "../lib/data/rng.ts";
Deno.env.set("SAFETY_COMPASS_QUIET", "1");
for (const [name, spec] of [
  ["toy 4x128", { arch: "gpt2", vocabSize: 256, nLayer: 4, dModel: 128, nHead: 4, maxPositions: 128 }],
  ["gpt2-small-shape 12x768", { arch: "gpt2", vocabSize: 1024, nLayer: 12, dModel: 768, nHead: 12, maxPositions: 256 }],
] as const) {
  const m = await createModel(spec, { tokenizer: numberTokenizer(spec.vocabSize), backend: TEST_BACKEND });
  const rng = makeRng(1);
  const ids = (k: number) => Array.from({ length: k }, () => 1 + rng.int(200)).join(" ");
  const rows = Array.from({ length: 64 }, (_, i) => ({ prompt: ids(16 + (i % 16)), trace: ids(32 + (i % 16)) }));
  await collectActivations(m, rows.slice(0, 4));
  for (const pooling of ["mean", "none"] as const) {
    const a = await collectActivations(m, rows, { pooling, batchSize: 16 });
    console.log(`${name} ${TEST_BACKEND} pooling=${pooling}: ${a.tokensPerSecond.toFixed(0)} tok/s, ${a.seconds.toFixed(2)} s, ${a.tokenCounts.reduce((x, y) => x + y)} tokens, layers ${a.layers.length}`);
  }
  m.dispose();
}
