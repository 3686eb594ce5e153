/**
 * {@linkcode judgeAgreement}: several judges on the same items, their pairwise agreement
 * (raw agreement and Cohen's kappa) and their agreement with labels where labels exist
 * (accuracy, per-class recall), each with a percentile bootstrap interval over items.
 *
 * Cohen's kappa: `(p_o - p_e) / (1 - p_e)` with `p_o` the share of items on which two judges
 * agree and `p_e = sum_c p_a(c) p_b(c)` the agreement expected from their marginals; it is
 * 1 when both judges give one and the same class to every item (p_e = 1), as they then
 * agree perfectly.
 *
 * @module
 */

import { bootstrapCI, type Interval } from "../compass/metrics.ts";

/** A judge's output on one item: a boolean or a class label. */
export type JudgeLabel = boolean | string;

/** One pair of judges. */
export interface PairAgreement {
  /** First judge's name. */
  a: string;
  /** Second judge's name. */
  b: string;
  /** Share of items on which they agree. */
  agreement: Interval;
  /** Cohen's kappa. */
  kappa: Interval;
}

/** One judge against the labels. */
export interface LabelAgreement {
  /** The judge's name. */
  judge: string;
  /** Share of items where the judge gives the label. */
  accuracy: Interval;
  /** Cohen's kappa with the labels. */
  kappa: Interval;
  /** Per label class: recall (share of that class's items the judge labels so) and its n. */
  recall: Record<string, { value: Interval; n: number }>;
}

/** What {@linkcode judgeAgreement} returns. */
export interface AgreementReport {
  /** Judge names, in the order given. */
  judges: string[];
  /** Items judged. */
  n: number;
  /** Every pair (a before b in `judges`). */
  pairs: PairAgreement[];
  /** Each judge against the labels (empty without labels). */
  vsLabels: LabelAgreement[];
  /** Agreement matrix (judges x judges, diagonal 1), for a heatmap. */
  agreementMatrix: number[][];
  /** Kappa matrix (judges x judges, diagonal 1). */
  kappaMatrix: number[][];
}

/** Options of {@linkcode judgeAgreement}. */
export interface AgreementOptions {
  /** Bootstrap resamples. @default 1000 */
  reps?: number;
  /** 1 - coverage. @default 0.05 */
  alpha?: number;
  /** Seed. @default 0 */
  seed?: number;
}

const key = (x: JudgeLabel) => String(x);

/** Cohen's kappa of two label sequences over the given item indices (NaN when undefined). */
export function cohenKappa(
  a: readonly JudgeLabel[],
  b: readonly JudgeLabel[],
  idx?: ArrayLike<number>,
): number {
  const ix = idx ?? Array.from(a, (_, i) => i);
  const n = ix.length;
  if (n === 0) return NaN;
  let agree = 0;
  const ca = new Map<string, number>(), cb = new Map<string, number>();
  for (let k = 0; k < n; k++) {
    const x = key(a[ix[k]]), y = key(b[ix[k]]);
    if (x === y) agree++;
    ca.set(x, (ca.get(x) ?? 0) + 1);
    cb.set(y, (cb.get(y) ?? 0) + 1);
  }
  const po = agree / n;
  let pe = 0;
  for (const [c, m] of ca) pe += (m / n) * ((cb.get(c) ?? 0) / n);
  if (pe >= 1) return po === 1 ? 1 : NaN;
  return (po - pe) / (1 - pe);
}

function agreeShare(a: readonly JudgeLabel[], b: readonly JudgeLabel[], idx: ArrayLike<number>) {
  let k = 0;
  for (let j = 0; j < idx.length; j++) if (key(a[idx[j]]) === key(b[idx[j]])) k++;
  return k / idx.length;
}

/**
 * Puts several judges on the same items. `judges` maps a name to a function of the item
 * (sync; run async judges first and pass their outputs as `(item, i) => out[i]`); `labels`
 * (optional) are the reference labels, compared with `String(x)` equality (so booleans
 * compare with booleans, class names with class names).
 *
 * @example
 * ```ts ignore
 * const items = ["I can't.", "Sure: step 1", "No."];
 * const r = judgeAgreement({
 *   ours: (t) => isRefusalText(t),
 *   prefix: (t) => t.startsWith("I can't"),
 * }, items, [true, false, true]);
 * r.pairs[0].agreement.value; // 2/3
 * ```
 */
export function judgeAgreement<T>(
  judges: Record<string, (item: T, i: number) => JudgeLabel>,
  items: readonly T[],
  labels?: readonly JudgeLabel[],
  opts: AgreementOptions = {},
): AgreementReport {
  const names = Object.keys(judges);
  const n = items.length;
  if (names.length === 0) throw new Error("Cannot compare judges: none given");
  if (n === 0) throw new Error("Cannot compare judges: no items");
  if (labels && labels.length !== n) {
    throw new Error(`Cannot compare judges with labels: ${labels.length} labels for ${n} items`);
  }
  const bo = { reps: opts.reps ?? 1000, alpha: opts.alpha ?? 0.05, seed: opts.seed ?? 0 };
  const out: Record<string, JudgeLabel[]> = {};
  for (const name of names) {
    out[name] = items.map((it, i) => {
      const v = judges[name](it, i);
      if (typeof v !== "boolean" && typeof v !== "string") {
        throw new Error(
          `Judge "${name}" returned ${
            JSON.stringify(v)
          } for item ${i}; expected a boolean or a string`,
        );
      }
      return v;
    });
  }
  const pairs: PairAgreement[] = [];
  const J = names.length;
  const agreementMatrix = names.map(() => new Array<number>(J).fill(1));
  const kappaMatrix = names.map(() => new Array<number>(J).fill(1));
  for (let i = 0; i < J; i++) {
    for (let j = i + 1; j < J; j++) {
      const a = out[names[i]], b = out[names[j]];
      const agreement = bootstrapCI(n, (idx) => agreeShare(a, b, idx), bo);
      const kappa = bootstrapCI(n, (idx) => cohenKappa(a, b, idx), bo);
      pairs.push({ a: names[i], b: names[j], agreement, kappa });
      agreementMatrix[i][j] = agreementMatrix[j][i] = agreement.value;
      kappaMatrix[i][j] = kappaMatrix[j][i] = kappa.value;
    }
  }
  const vsLabels: LabelAgreement[] = [];
  if (labels) {
    const classes = [...new Set(labels.map(key))].sort();
    for (const name of names) {
      const a = out[name];
      const recall: LabelAgreement["recall"] = {};
      for (const c of classes) {
        const members = labels.map((l, i) => (key(l) === c ? i : -1)).filter((i) => i >= 0);
        const value = bootstrapCI(members.length, (idx) => {
          let k = 0;
          for (let j = 0; j < idx.length; j++) if (key(a[members[idx[j]]]) === c) k++;
          return k / idx.length;
        }, bo);
        recall[c] = { value, n: members.length };
      }
      vsLabels.push({
        judge: name,
        accuracy: bootstrapCI(n, (idx) => agreeShare(a, labels, idx), bo),
        kappa: bootstrapCI(n, (idx) => cohenKappa(a, labels, idx), bo),
        recall,
      });
    }
  }
  return { judges: names, n, pairs, vsLabels, agreementMatrix, kappaMatrix };
}
