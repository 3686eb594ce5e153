/**
 * Names of the rows `deno task defences` writes for Park & Kim's predictability test (x = the
 * layer of the refusal direction), shared by the experiment that writes them and the readers
 * (saved results, claims ledger, README tables) without loading the experiment's code.
 *
 * @module
 */

/** The metric names of the predictability rows. */
export const PREDICT_METRICS = {
  /** Held-out AUROC of the refusal direction, harmful vs benign prompts. */
  auroc: "refusal direction AUROC",
  /** Pearson r of the refusal-direction score with injection harm, across prompts. */
  across: "alignment vs injection r",
  /** The same within templates. */
  within: "alignment vs injection r (within template)",
} as const;
