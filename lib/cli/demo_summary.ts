/**
 * The demo report's summary of findings: sentences generated from the measured numbers (never
 * written by hand), so the first thing a reader sees says what the figures show, with
 * intervals and sample sizes, and says plainly when a result has a trivial explanation (the
 * best compass layer being the embeddings).
 *
 * @module
 */

import type { SweepRow } from "../compass/sweep.ts";
import type { RateRow } from "../experiments/profile.ts";
import type { PositionKl } from "../eval/diagnostics.ts";
import { formatPercentInterval, formatRateCount, formatWithInterval } from "../viz/format_rate.ts";
import { SMALL_N } from "../viz/palette.ts";

type SweepLike = Pick<
  SweepRow,
  "layer" | "method" | "auroc" | "aurocLo" | "aurocHi" | "nTest"
>;

/** The better of two sweep rows: higher AUROC, then narrower interval, then lower layer. */
function better<T extends SweepLike>(a: T, b: T): T {
  if (b.auroc !== a.auroc) return b.auroc > a.auroc ? b : a;
  const wa = a.aurocHi - a.aurocLo;
  const wb = b.aurocHi - b.aurocLo;
  if (wb !== wa) return wb < wa ? b : a;
  return b.layer < a.layer ? b : a;
}

function auroc(r: SweepLike): string {
  return `AUROC ${formatWithInterval(r.auroc, r.aurocLo, r.aurocHi)}`;
}

/**
 * Sentences on a compass layer sweep: the best layer of each method with its interval and n;
 * when the best layer overall is 0 (the embeddings, before any block has run), a plain
 * statement that words alone separate the classes there (a lexical shortcut), beside the
 * best layer from 1 on.
 *
 * @example
 * ```ts
 * const rows = [
 *   { layer: 0, method: "craft" as const, auroc: 1, aurocLo: 1, aurocHi: 1, nTest: 96 },
 *   { layer: 2, method: "craft" as const, auroc: 0.9, aurocLo: 0.85, aurocHi: 0.95, nTest: 96 },
 * ];
 * compassFindings(rows)[1]; // "The best layer is 0, the embeddings: ..."
 * ```
 * @throws Error when `rows` is empty.
 */
export function compassFindings(rows: readonly SweepLike[]): string[] {
  if (rows.length === 0) throw new Error("compassFindings: no sweep rows to summarise");
  const methods = [...new Set(rows.map((r) => r.method))];
  const bestOf = (rs: readonly SweepLike[]) => rs.reduce((a, b) => better(a, b));
  const perMethod = methods.map((m) => bestOf(rows.filter((r) => r.method === m)));
  const ns = [...new Set(rows.map((r) => r.nTest))];
  const nText = ns.length === 1 ? `n = ${ns[0]} held-out traces` : `n = ${ns.join("/")}`;
  const out = [
    `Best held-out AUROC of each compass method (safe vs unsafe traces, 95% bootstrap ` +
    `intervals, ${nText}): ` +
    perMethod.map((r) => {
      let text = `${r.method} ${auroc(r)} at layer ${r.layer}`;
      const later = rows.filter((x) => x.method === r.method && x.layer >= 1);
      if (r.layer === 0 && later.length > 0) {
        const d = bestOf(later);
        text += ` (from layer 1 on: ${d.auroc.toFixed(3)} at layer ${d.layer})`;
      }
      return text;
    }).join("; ") + ".",
  ];
  const best = bestOf(rows);
  const deeper = rows.filter((r) => r.layer >= 1);
  if (best.layer === 0) {
    let text = `The best layer is 0, the embeddings (${best.method}, ${auroc(best)}): no ` +
      "attention or MLP block has run there, so what separates the classes is which words the " +
      "prompt and trace contain (mean-pooled token embeddings), a lexical shortcut rather " +
      "than anything the model computes about safety.";
    if (deeper.length > 0) {
      const d = bestOf(deeper);
      text += ` The best layer from 1 on is layer ${d.layer} (${d.method}, ${
        auroc(d)
      }, n = ${d.nTest}); compare methods there, not at layer 0.`;
    }
    out.push(text);
  } else {
    const zero = rows.filter((r) => r.layer === 0);
    let text = `The best layer is ${best.layer} (${best.method}, ${
      auroc(best)
    }, n = ${best.nTest}), past the embeddings.`;
    if (zero.length > 0) {
      const z = bestOf(zero);
      text += ` At layer 0 (the embeddings: words alone) the best is ${z.method} with ${auroc(z)}${
        z.auroc >= 0.8 ? ", so much of the separation is already lexical" : ""
      }.`;
    }
    out.push(text);
  }
  return out;
}

/** Names of the profile metrics the demo measures. */
const M = {
  refusal: "harmful refusal",
  compliance: "harmful compliance",
  overRefusal: "over-refusal (borderline)",
  jailbreak: "jailbreak compliance",
  benign: "benign accuracy",
  prefill: "prefill compliance",
};

function rateText(r: RateRow): string {
  return `${formatRateCount(r.rate, r.n)} ${formatPercentInterval(r.lo, r.hi)}`;
}

/**
 * Sentences on a behaviour profile (lib/experiments/profile.ts rows of several models):
 * refusal, over-refusal, benign accuracy and jailbreak compliance side by side, each as
 * "65.0% (26/40) [50.0%, 80.0%]"; what prefilling a harmful answer does to each model's
 * compliance (and whether the rise clears the intervals); which subgroups rest on fewer than
 * `SMALL_N` prompts. `prefillFrom` names the model whose harmful answers were prefilled: its
 * own prefill rows are a sanity check (it finishes its own answer) and are left out.
 *
 * @example
 * ```ts
 * const row = (model: string, metric: string, rate: number, n: number, k?: number) =>
 *   ({ model, metric, rate, lo: rate, hi: rate, n, k });
 * profileFindings([
 *   row("a", "harmful compliance", 0.35, 40),
 *   row("a", "prefill compliance", 1, 36, 10),
 * ]);
 * ```
 */
export function profileFindings(
  rows: readonly RateRow[],
  opts: { small?: number; prefillFrom?: string } = {},
): string[] {
  const small = opts.small ?? SMALL_N;
  const models = [...new Set(rows.map((r) => r.model))];
  const get = (model: string, metric: string) =>
    rows.find((r) => r.model === model && r.metric === metric && r.k === undefined);
  const out: string[] = [];
  const sideBySide = (metric: string, lead: string) => {
    const parts = models.flatMap((m) => {
      const r = get(m, metric);
      return r ? [`${m} ${rateText(r)}`] : [];
    });
    if (parts.length > 0) out.push(`${lead}: ${parts.join("; ")}.`);
  };
  sideBySide(M.refusal, "Refusal of held-out harmful prompts");
  sideBySide(M.overRefusal, "Over-refusal of borderline (benign but alarming) prompts");
  sideBySide(M.benign, "Benign task accuracy");
  sideBySide(M.jailbreak, "Compliance with jailbreak-wrapped harmful prompts");
  for (const m of models) {
    if (m === opts.prefillFrom) continue;
    const base = get(m, M.compliance);
    const pre = rows.filter((r) => r.model === m && r.metric === M.prefill && r.k !== undefined)
      .sort((a, b) => a.k! - b.k!);
    if (!base || pre.length === 0) continue;
    const deepest = pre[pre.length - 1];
    const steps = pre.map((r) => `${formatRateCount(r.rate, r.n)} at k=${r.k}`).join(", ");
    let verdict: string;
    if (deepest.rate > base.rate && deepest.lo > base.hi) {
      verdict = base.rate < 0.5
        ? "the rise clears both intervals: its refusals are shallow, undone by a few forced tokens."
        : "the rise clears both intervals.";
    } else if (deepest.rate > base.rate) {
      verdict = "higher, but the intervals overlap, so the rise is not established at this n.";
    } else {
      verdict = "prefilling does not raise it here.";
    }
    const whose = opts.prefillFrom ? `${opts.prefillFrom}'s harmful answer` : "a harmful answer";
    out.push(
      `Prefilling the first k tokens of ${whose} (n=${deepest.n} prompts with such an ` +
        `answer) moves ${m}'s harmful compliance from ${
          formatRateCount(base.rate, base.n)
        } without prefill ` +
        `to ${steps}; ${verdict}`,
    );
  }
  const smallRows = new Map<string, number>();
  for (const r of rows) if (r.n < small && r.k === undefined) smallRows.set(r.metric, r.n);
  if (smallRows.size > 0) {
    out.push(
      `Rates resting on fewer than ${small} prompts (${
        [...smallRows].map(([metric, n]) => `${metric}, n=${n}`).join("; ")
      }) have wide intervals; they are hatched in the figure and are anecdotes, not findings.`,
    );
  }
  return out;
}

/**
 * A sentence on KL(aligned || base) by response position: where it peaks, and its mean over
 * the first positions against the rest (shallow alignment concentrates it at the start).
 *
 * @example
 * ```ts
 * klFindings([{ position: 0, kl: 6.9, n: 36 }, { position: 1, kl: 0.3, n: 36 }], "a", "b");
 * ```
 */
export function klFindings(
  rows: readonly PositionKl[],
  aligned: string,
  base: string,
  head = 3,
): string[] {
  const finite = rows.filter((r) => Number.isFinite(r.kl) && r.n > 0);
  if (finite.length === 0) return [];
  const peak = finite.reduce((a, b) => (b.kl > a.kl ? b : a));
  const mean = (rs: readonly PositionKl[]) => rs.reduce((s, r) => s + r.kl, 0) / rs.length;
  const first = finite.filter((r) => r.position < head);
  const rest = finite.filter((r) => r.position >= head);
  let text = `KL(${aligned} || ${base}) along ${base}'s harmful answers peaks at response ` +
    `position ${peak.position} (${peak.kl.toFixed(2)} nats, n=${peak.n} answers)`;
  if (first.length > 0 && rest.length > 0) {
    const a = mean(first);
    const b = mean(rest);
    text += `; its mean is ${a.toFixed(2)} over the first ${head} positions and ${
      b.toFixed(2)
    } after${a > b ? ", so the fine-tune changed the start of the answer most" : ""}`;
  }
  return [text + "."];
}
