/**
 * safety-compass: research on the safety of language models' reasoning, cell by cell.
 *
 * Load a model and read every layer's hidden states, collect contrastive safe / unsafe /
 * rethink traces, fit a safety compass on hidden states beside the classic probes, steer
 * and ablate, train with RL, attack and measure with intervals, and plot it inline in
 * Jupyter. The public API, by topic (mod.ts re-exports it in this order):
 *
 * 1. **Load a model, generate, tokenize**: `loadModel`, `loadModelOrStandIn`, `createModel`,
 *    `Model` (`model.forward`, `model.generate`), `loadTokenizer`, `loadRemoteModel`,
 *    `addLora`, `WorkerPool`.
 * 2. **Read activations**: `model.runWithCache(input, { names })` (TransformerLens hook
 *    names: `blocks.3.hook_resid_post`, ...) and `model.runWithHooks(input, { hooks })`;
 *    `collectActivations` (alias `collectPairs`), `Activations`, `makeMatrix`, `project2d`.
 * 3. **Data**: `generateWorld`, `loadSafetyWorld`, `gradeResponse`, `loadBenchmark`,
 *    `loadPrompts`, `loadRefusalDirectionSplit`, `makeRng`.
 * 4. **The safety compass**: `fitCompass`, `sweepLayers`, `fitCraft`, `auditGeneration`,
 *    `generateMonitored`, `calibrateMonitor`; statistics `auroc`, `aurocCI`, `proportionCI`,
 *    `bootstrapCI`, `clusterBootstrapCI` (two-level: templates, then prompts; SafetyWorld's
 *    default) (their `alpha` is the significance level, 1 - coverage).
 * 5. **Steering and ablation**, in two calls: `steeringVector(model, pairs, { layer })`
 *    returns a `SteeringVector`; `model.generate({ prompts, steer: { vector, strength } })`
 *    adds it, `steer: { vector, ablate: true }` ablates its direction. `strength` is the one
 *    word for how much (the old `steerIntervention(layer, r, strength)` path still works).
 * 6. **Interpretability** (where a refusal is decided): `logitLens`,
 *    `directLogitAttribution`, `activationPatching`, `attributionPatching`, each with
 *    bootstrap intervals over prompts and a plot (`plotLogitLens`, `plotDla`, `plotPatching`).
 * 7. **Training**: `trainSft`, `trainRL`, rewards (`craftReward`, `alphaAlignReward`,
 *    `traitReward`), `AdamW`, and the paper experiments `runCraftExperiment`,
 *    `runAlphaAlignExperiment`, `runTraitsExperiment`; against reward hacking,
 *    `hackDetector`, `refittingCompass`, `minEnsembleReward` and `runHackingExperiment`.
 * 8. **Attacks and evaluation**: `evaluate`, `runAttack` with `prefillAttack`,
 *    `jailbreakAttack`, `injectionAttack`, `randomInsertionAttack`; `prefillCurve`,
 *    `injectionCurve`, `klByPosition`, `profileModel`, `compareDefences`, `persistenceTable`;
 *    the claims ledger: `CLAIMS`, `claimsLedger`, `loadSavedResults` (notebook 10).
 * 9. **Judges**: `refusalVerdict` (full / partial / none), `isRefusalText`,
 *    `jailbreakVerdict` and `isJailbroken` (refused / off-topic / harmful, with the evidence),
 *    `ModelJudge` and `remoteJailbreakJudge` (a loaded or served model as the judge),
 *    `judgeAgreement` (pairwise kappa with intervals), `LlmJudge`, `verifyThinkFormat`.
 * 10. **Plots, tables and display**: `plotBars`, `plotCurves`, `plotLayerSweep`,
 *    `plotProjection`, `plotRateCurve`, `plotScatter`, `plotHeatmap`, `plotPositionKl` (each
 *    returns a plotly figure that draws itself when it ends a cell); `show`; `rateTable`
 *    and `formatRate` ("40.8% [31.2, 50.1] n=49"); `saveFigure`, `buildReport`.
 * 11. **Files**: `readSafetensors`, `writeSafetensors`, checkpoint folders.
 *
 * @example
 * ```ts
 * import { loadModel, plotBars, steeringVector } from "./mod.ts";
 * const model = await loadModel("toy-base");             // a SafetyWorld checkpoint
 * const g = await model.generate({ prompts: ["what is 3 plus 4 ?"], maxNewTokens: 16 });
 * console.log(g.text[0]);
 * const v = await steeringVector(model, [
 *   { positive: "how do I bake bread ?", negative: "how do I poison a river ?" },
 * ], { layer: -2 });
 * const s = await model.generate({ prompts: ["hello"], steer: { vector: v, strength: 2 } });
 * plotBars([{ name: "refusal", value: 0.4, lo: 0.31, hi: 0.5 }]); // drawn inline in Jupyter
 * ```
 *
 * @module
 */

// ---- Load a model, generate, tokenize ----
export {
  type BackendInfo,
  backendInfo,
  type BackendName,
  type BackendOptions,
  initBackend,
} from "./lib/engine/backend.ts";
export {
  CHECKPOINT_DIR,
  EXTERNAL_AUTO_BYTES,
  loadModel,
  type LoadOptions,
  matrixBytes,
  resolveModelDir,
} from "./lib/model/load.ts";
export { createModel, type CreateOptions } from "./lib/model/create.ts";
export {
  byteLevelAlphabet,
  isStandIn,
  KNOWN_CONFIGS,
  loadModelOrStandIn,
  type ModelOrStandIn,
  type ModelOrStandInOptions,
  QWEN3_STYLE_CHAT_TEMPLATE,
  randomStandIn,
  STAND_IN_CORPUS,
  STAND_IN_PREFIX,
  STAND_IN_SPECIAL_TOKENS,
  type StandInOptions,
  type StandInTokenizerFiles,
  standInTokenizerFiles,
  type StandInTokenizerOptions,
  trainByteLevelBpe,
} from "./lib/model/stand_in.ts";
export { Model, type ModelCapabilities } from "./lib/model/model.ts";
export {
  type Arch,
  type ConfigSpec,
  type LayerType,
  makeConfig,
  type ModelConfig,
  parseConfig,
} from "./lib/model/config.ts";
export { ROPE_TYPES, type RopeSpec, type RopeType } from "./lib/model/rope.ts";
export {
  attachExternal,
  externalOf,
  type ExternalParams,
  type Params,
} from "./lib/model/weights.ts";
export {
  type ExternalDType,
  type ExternalLayout,
  type ExternalMatrix,
  externalMatrix,
  type ExternalMatrixOptions,
} from "./lib/engine/external_matrix.ts";
export {
  disableBf16Helper,
  enableBf16Helper,
  externalGather,
  externalMatMul,
  type ExternalWeightsInfo,
  externalWeightsInfo,
} from "./lib/engine/external_weights.ts";
export type {
  ForwardOptions,
  ForwardOutput,
  Intervention,
  KVCache,
} from "./lib/model/transformer.ts";
export type {
  ForcedSpan,
  GenerateOptions,
  GenerateResult,
  GenerateRunner,
  Generator,
} from "./lib/model/generate.ts";
export type { SamplingOptions } from "./lib/model/sampling.ts";
export {
  type ChatMessage,
  type ChatTemplateOptions,
  loadTokenizer,
  type TextTokenizer,
  tokenizerFromJson,
} from "./lib/model/tokenizer.ts";
export { encodeChat, encodePrompt, type PromptOptions } from "./lib/model/chat.ts";
export {
  promptOpensReasoning,
  type ReasoningSplit,
  splitReasoning,
  splitReasoningIds,
  type SplitReasoningOptions,
} from "./lib/model/reasoning.ts";
export { eosIdList, readEosTokenIds } from "./lib/model/generation_config.ts";
export { cachedSnapshot, downloadHfModel, type DownloadHfOptions } from "./lib/model/hub.ts";
export {
  discoverVariants,
  parseVariantArg,
  readVariantRecord,
  resolveVariants,
  saveVariant,
  type VariantInfo,
  type VariantRecord,
  type VariantSpec,
  type VariantStage,
  weightsFingerprint,
} from "./lib/model/variants.ts";
export {
  addLora,
  loadLora,
  type LoraOptions,
  mergeLora,
  removeLora,
  saveLora,
  trainableVariables,
} from "./lib/model/lora.ts";
export {
  type ForcedText,
  type HasCapabilities,
  loadRemoteModel,
  RemoteGenerateError,
  type RemoteGenerateOptions,
  type RemoteGenerateResult,
  RemoteModel,
  type RemoteModelOptions,
  requireCapability,
  type RetryOptions,
} from "./lib/model/remote.ts";
export type { DiskCache, FetchLike, RetryInfo } from "./lib/net/http.ts";
export { type PoolOptions, type Replicable, WorkerError, WorkerPool } from "./lib/parallel/pool.ts";
export {
  forwardOnWorkers,
  generateOnWorkers,
  type WorkerForwardOptions,
  type WorkerForwardOutput,
} from "./lib/parallel/generate.ts";

// ---- Read activations ----
// Named activations and hooks (TransformerLens names)
export type { ForwardHook } from "./lib/model/transformer.ts";
export {
  applyFinalNorm,
  attnOutBias,
  attnOutProject,
  unembed,
  unembedRows,
} from "./lib/model/transformer.ts";
export { actName, BLOCK_HOOKS, hookPointNames, resolveHookName } from "./lib/model/hook_names.ts";
export { ActivationCache } from "./lib/model/activation_cache.ts";
export {
  type HookableModel,
  type HookContext,
  type HookFn,
  type HookInput,
  inputIds,
  runWithCache,
  type RunWithCacheOptions,
  runWithHooks,
  type RunWithHooksOptions,
} from "./lib/model/hooks.ts";
export { Activations } from "./lib/compass/activations.ts";
export {
  collectActivations,
  type CollectInput,
  type CollectOptions,
  collectPairs,
  type CollectRow,
  type CollectRunner,
} from "./lib/compass/collect.ts";
export { collectOnWorkers } from "./lib/parallel/collect.ts";
export { makeMatrix, type Matrix } from "./lib/compass/matrix.ts";
export { project2d } from "./lib/compass/project.ts";

// ---- Data: SafetyWorld and benchmarks ----
export type {
  PromptLabel,
  PromptRow,
  Split,
  TraceLabel,
  TraceRow,
  TraceTemplate,
} from "./lib/data/schema.ts";
export { makeRng, type Rng } from "./lib/data/rng.ts";
export {
  applyJailbreak,
  type JailbreakTemplate,
  loadJailbreakTemplates,
} from "./lib/data/benchmarks/jailbreak_templates.ts";
export {
  type BenchmarkName,
  loadBenchmark,
  type LoadBenchmarkOptions,
} from "./lib/data/benchmarks/load.ts";
export { loadPrompts, type LoadPromptsOptions } from "./lib/data/benchmarks/prompts.ts";
export {
  type ParquetColumn,
  type ParquetInfo,
  parquetInfo,
  type ParquetReadOptions,
  readParquet,
  readParquetTable,
} from "./lib/data/parquet.ts";
export {
  loadRefusalDirectionSplit,
  type RefusalSplitOptions,
} from "./lib/data/benchmarks/refusal_splits.ts";
export {
  loadRefusalPrefixes,
  type RefusalPrefixList,
} from "./lib/data/benchmarks/refusal_prefixes.ts";
export {
  type JbbArtifact,
  loadJbbArtifactFile,
  loadJbbArtifacts,
  loadXstestCompletions,
  type XstestClass,
  type XstestCompletion,
} from "./lib/data/benchmarks/judge_dev.ts";
export {
  generateWorld,
  type WorldOptions,
  type WorldSizes,
  writeWorld,
} from "./lib/data/safetyworld/generate.ts";
export type {
  Draft,
  World,
  WorldKind,
  WorldPromptRow,
  WorldSftRow,
  WorldTraceRow,
  WorldTraitRow,
} from "./lib/data/safetyworld/plan.ts";
export {
  loadSafetyWorld,
  type LoadWorldOptions,
  type WorldFile,
} from "./lib/data/safetyworld/load.ts";
export { type Grade, gradeResponse } from "./lib/data/safetyworld/graders.ts";
export type { GradableRow } from "./lib/data/safetyworld/grade_text.ts";

// ---- The safety compass: probes, CRAFT, layer sweeps, audits, monitors, statistics ----
export {
  type Compass,
  type CompassMethod,
  fitProbe,
  type FitProbeOptions,
  loadCompass,
  type Pooling,
} from "./lib/compass/compass.ts";
export type { LinearProbe, LinearProbeSpec, ProbeMethod } from "./lib/compass/probes.ts";
export {
  type CRAFT_CLASSES,
  type CRAFT_PARAM_NAMES,
  type CraftClass,
  type CraftEpoch,
  type CraftFitInfo,
  type CraftHead,
  type CraftLossWeights,
  type CraftOptions,
  type CraftParams,
  fitCraft,
  type WeightRecord,
} from "./lib/compass/craft.ts";
export {
  layerSweep,
  type SweepOptions,
  type SweepRow,
  type SweepSplit,
} from "./lib/compass/sweep.ts";
export {
  fitCompass,
  type FitCompassOptions,
  type LabelMapping,
  sweepLayers,
  type SweepLayersOptions,
} from "./lib/compass/fit.ts";
export { auditGeneration, type AuditGenerationOptions, AuditResult } from "./lib/compass/audit.ts";
export {
  auditHtml,
  type AuditRun,
  type AuditTrail,
  exportAudit,
  type ExportAuditOptions,
  trailSummary,
} from "./lib/viz/audit_page.ts";
export {
  type CalibratedThreshold,
  generateMonitored,
  type MonitorAction,
  type MonitoredGenerateOptions,
  type MonitoredResult,
  type MonitorOptions,
  type MonitorTrail,
  saveAudit,
} from "./lib/compass/monitor.ts";
export {
  calibrateMonitor,
  type CalibrateOptions,
  type FlagRate,
  flagRateOf,
  type MonitorCalibration,
  monitorFlagRate,
  type MonitorGenOptions,
  type PromptInput,
  thresholdAtRate,
} from "./lib/compass/calibrate.ts";
export {
  auroc,
  aurocCI,
  type BinaryLabels,
  bootstrapCI,
  type BootstrapOptions,
  clusterBootstrapCI,
  type ClusterBootstrapOptions,
  type ClusterInterval,
  type Interval,
  pearson,
  proportionCI,
  type ProportionOptions,
  spearman,
} from "./lib/compass/metrics.ts";
export { exportCompassForTorch } from "./lib/compass/export_torch.ts";

// ---- Steering and ablation ----
export {
  ablationInterventions,
  compassVector,
  type ContrastPair,
  steeringVector,
  type SteeringVectorOptions,
  steerIntervention,
} from "./lib/compass/steer.ts";
export {
  loadSteeringVector,
  type SteeringMethod,
  SteeringVector,
  type SteeringVectorJson,
} from "./lib/compass/steering_vector.ts";
export { resolveLayer, type SteerDirection, type SteerOptions } from "./lib/model/steering.ts";

// ---- Interpretability: logit lens, direct logit attribution, activation and attribution patching ----
export {
  checkMetric,
  type LogitDiff,
  metricOf,
  metricWeights,
  positionIndex,
  tokenIds,
} from "./lib/interp/metric.ts";
export { columnMeans, type InterpIntervalOptions, ratioOfMeans } from "./lib/interp/intervals.ts";
export {
  lensLogits,
  logitLens,
  type LogitLensOptions,
  type LogitLensResult,
} from "./lib/interp/logit_lens.ts";
export {
  directLogitAttribution,
  type DlaOptions,
  type DlaResult,
  residualDirection,
} from "./lib/interp/dla.ts";
export {
  activationPatching,
  type PatchingOptions,
  type PatchingResult,
  type PatchTarget,
  type PromptPair,
} from "./lib/interp/patching.ts";
export { attributionPatching, patchingAgreement } from "./lib/interp/attribution.ts";
export { plotDla, plotDlaHeads, plotLogitLens, plotPatching } from "./lib/interp/plots.ts";

// ---- Training: SFT, RL (GRPO), rewards, experiments ----
export {
  evalLoss,
  type SftExample,
  type SftLogRow,
  type SftOptions,
  type SftResult,
  type SftRunner,
  trainSft,
} from "./lib/train/sft.ts";
export {
  AdamW,
  type AdamWOptions,
  type AdamWState,
  checkAdamWOptions,
  type NonFinite,
  type StateLocation,
} from "./lib/optim/adamw.ts";
export { type ApplyOptions, GradientAccumulator, type MicroBatch } from "./lib/optim/accumulate.ts";
export { lmLoss, padBatch, type TokenBatch, tokenLogprobs } from "./lib/optim/loss.ts";
export {
  type DataParallelOptions,
  type DataParallelStep,
  DataParallelTrainer,
  type EncodedExample,
  evalLossOnWorkers,
  trainSftOnWorkers,
} from "./lib/parallel/sft.ts";
export {
  makeRunLog,
  type RLLogRow,
  type RLOptions,
  type RLPerturbOptions,
  type RolloutRecord,
  type RunLog,
  runWarnings,
  trainRL,
} from "./lib/train/rl/train.ts";
export {
  alphaAlignReward,
  type AlphaAlignRewardOptions,
  craftReward,
  type CraftRewardOptions,
  type CraftWeights,
  type GroupMember,
  latentOnly,
  type Reward,
  type RewardContext,
  type RewardFn,
  type RewardValue,
  type TextJudge,
  textOnly,
  traitReward,
} from "./lib/train/rewards.ts";
export {
  hackDetector,
  type HackDetectorOptions,
  type MinEnsembleOptions,
  minEnsembleReward,
  pooledCompletions,
  type RefitRecord,
  refittingCompass,
  type RefittingCompassOptions,
} from "./lib/train/hacking.ts";
export type { RLMonitor, RLMonitorContext } from "./lib/train/rl/monitor.ts";
export {
  type PerturbedExample,
  perturbExamples,
  type PerturbOptions,
  type PerturbPositions,
  perturbRollout,
  type PerturbRow,
  type PerturbSchedule,
  type PerturbSource,
  type RolloutPerturber,
  type RolloutPerturbOptions,
} from "./lib/train/perturb.ts";
export type { MaskedExample, ResponseSegment } from "./lib/train/tokenwise.ts";
export {
  type RewardServer,
  type RewardServiceOptions,
  serveRewards,
  type ServeRewardsOptions,
} from "./lib/serve/rewards.ts";
export type {
  BuiltinRewardOptions,
  ItemReward,
  RewardItem,
  ServedReward,
} from "./lib/serve/catalog.ts";
export {
  CRAFT_CONDITIONS,
  type CraftCondition,
  type CraftExperimentOptions,
  runCraftExperiment,
} from "./lib/experiments/craft_rl.ts";
export {
  type AlphaAlignExperimentOptions,
  type AlphaAlignVariant,
  runAlphaAlignExperiment,
} from "./lib/experiments/alphaalign.ts";
export { runTraitsExperiment, type TraitsExperimentOptions } from "./lib/experiments/traits.ts";
export {
  HACKING_CONDITIONS,
  type HackingCondition,
  type HackingExperimentOptions,
  runHackingExperiment,
} from "./lib/experiments/hacking.ts";
export type { ExperimentOptions, RunRecord } from "./lib/experiments/run.ts";
export type { CIOptions } from "./lib/experiments/measure.ts";
export { isRunSize, RUN_SIZES, type RunSize, runSize, sizeBanner } from "./lib/experiments/size.ts";
export { type ResultRow, resultRow } from "./lib/experiments/rows.ts";
export type { RLBudgetOptions } from "./lib/experiments/runner.ts";
export type { ExampleRow, ExperimentResult, NamedFigure } from "./lib/experiments/result.ts";
export { TRAIT_DOMAINS, type TraitDomain } from "./lib/data/safetyworld/traits.ts";

// ---- Attacks and evaluation ----
export {
  type AttackBase,
  type AttackParams,
  type AttackResult,
  type AttackSpec,
  type AttackTarget,
  type HarmfulAnswers,
  type InjectionAttack,
  injectionAttack,
  type InjectionOptions,
  type InjectionSource,
  type JailbreakAttack,
  jailbreakAttack,
  type NoAttack,
  noAttack,
  type PrefillAttack,
  prefillAttack,
  type PromptRowsInput,
  type RandomInsertionAttack,
  randomInsertionAttack,
  type RandomInsertionOptions,
  runAttack,
  type RunAttackOptions,
} from "./lib/eval/attacks.ts";
export {
  defaultJudge,
  type EvalJudge,
  EvalReport,
  type EvalSuite,
  evaluate,
  type EvaluateOptions,
  type IntervalOptions,
  type JudgeContext,
  llmEvalJudge,
  type Verdict,
} from "./lib/eval/evaluate.ts";
export {
  type CurveOptions,
  type CurveRow,
  injectionCurve,
  type InjectionCurveOptions,
  injectionPredictability,
  perPromptRate,
  type Predictability,
  prefillCurve,
} from "./lib/eval/injection.ts";
export {
  type PredictPrompt,
  type RefusalPredictability,
  refusalPredictability,
} from "./lib/eval/refusal_predictability.ts";
export { klByPosition, type PositionKl } from "./lib/eval/diagnostics.ts";
export { profileModel, type ProfileOptions, type RateRow } from "./lib/experiments/profile.ts";
export {
  contentWords,
  isJailbroken,
  type JailbreakLabel,
  type JailbreakOptions,
  type JailbreakVerdict,
  jailbreakVerdict,
  nonWordRate,
  stem,
} from "./lib/judges/jailbreak.ts";
export {
  harmbenchTemplate,
  type JailbreakJudge,
  type JudgeModel,
  judgeTemplate,
  modelJailbreakJudge,
  ModelJudge,
  type ModelJudgeOptions,
  type ModelJudgeVerdict,
  parseYesNo,
  remoteJailbreakJudge,
  ruleJailbreakJudge,
  type TemplateName,
} from "./lib/judges/model_judge.ts";
export {
  type AgreementOptions,
  type AgreementReport,
  cohenKappa,
  judgeAgreement,
  type JudgeLabel,
  type LabelAgreement,
  type PairAgreement,
} from "./lib/eval/judge_agreement.ts";
export {
  fmtInterval,
  type JbbRow,
  jbbTable,
  markdownTable,
  type TwoFoldRow,
  xstestClass,
  type XstestRow,
  xstestTable,
  xstestTwoFold,
} from "./lib/eval/judge_tables.ts";
export {
  compareDefences,
  DEFENCE_VARIANTS,
  type DefenceComparison,
  type DefenceOptions,
  type DefenceVariant,
} from "./lib/experiments/defences.ts";
export {
  followsInstruction,
  harmfulFineTune,
  type HarmfulFtOptions,
  type PersistenceOptions,
  type PersistenceRow,
  persistenceTable,
  PERSONA_TEMPLATES,
  personaRows,
  type PromptTemplate,
  STEERING_INSTRUCTIONS,
  type SteeringInstruction,
} from "./lib/experiments/persistence.ts";
export {
  type PersistenceFigureOptions,
  persistenceSummary,
  plotPersistence,
} from "./lib/experiments/persistence_summary.ts";
export {
  fitMonitorCompass,
  measureMonitor,
  type MonitorCompass,
  type MonitorCompassOptions,
  type MonitorEval,
  type MonitorEvalOptions,
} from "./lib/experiments/monitor_eval.ts";
export {
  allOnExpectedSide,
  anyOnExpectedSide,
  type Decision,
  difference,
  findRow,
  formatMeasurement,
  type Measurement,
  MissingRowError,
  mostOnExpectedSide,
  nearZero,
  requireRow,
  unpaired,
} from "./lib/experiments/claim_rules.ts";
export {
  type Claim,
  CLAIMS,
  claimsLedger,
  type ClaimVerdict,
  countsLine,
  type LedgerRow,
  verdictCounts,
  VERDICTS,
} from "./lib/experiments/claims.ts";
export {
  fillLedgerSection,
  LEDGER_COLUMNS,
  ledgerFigure,
  ledgerMarkdown,
  parseMarkdownTable,
  verdictText,
} from "./lib/experiments/claims_table.ts";
export {
  collectResults,
  defenceMetricName,
  loadSavedResults,
  parseRunName,
  readSavedResult,
  SAVED_EXPERIMENTS,
  type SavedExperiment,
  type SavedResult,
  type SavedResults,
} from "./lib/experiments/saved_results.ts";
export {
  deltasMarkdown,
  fillTableBlocks,
  numberCell,
  pctCell,
  pointsCell,
  ratesMarkdown,
  RESULT_TABLE_IDS,
  type ResultTable,
  resultTables,
  tableBlockIds,
} from "./lib/experiments/result_tables.ts";

// ---- Judges ----
export {
  isRefusalText,
  type PrefixJudgeOptions,
  prefixRefusalJudge,
  type RefusalJudge,
  type RefusalKind,
  type RefusalOptions,
  type RefusalVerdict,
  refusalVerdict,
} from "./lib/judges/refusal.ts";
export {
  ALPHAALIGN_REFUSAL,
  extractAnswer,
  isAlphaAlignRefusal,
  type ThinkFormatOptions,
  verifyFormat,
  verifyThinkFormat,
} from "./lib/judges/format.ts";
export {
  type JudgeItem,
  type JudgeStats,
  type JudgeTemplate,
  type JudgeVerdict,
  LlmJudge,
  type LlmJudgeOptions,
  type ParsedVerdict,
} from "./lib/judges/llm_judge.ts";

// ---- Plots, tables and display ----
// (figure.ts's `RateRow`, the row of `plotRateCurve`, is not lib/experiments/profile.ts's
// `RateRow`; it is exported as `RateCurveRow`.)
export {
  figure,
  isDisplayable,
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  type TitleOptions,
} from "./lib/viz/figure.ts";
export { type BarRow, plotBars } from "./lib/viz/plots/bars.ts";
export { type CurvesOptions, plotCurves } from "./lib/viz/plots/curves.ts";
export { type HeatmapOptions, plotHeatmap } from "./lib/viz/plots/heatmap.ts";
export { type BandLineOptions, type BandLineRow, plotBandLine } from "./lib/viz/plots/band_line.ts";
export {
  type PatchingHeatmapOptions,
  plotPatchingHeatmap,
} from "./lib/viz/plots/patching_heatmap.ts";
export { type LayerSweepRow, plotLayerSweep } from "./lib/viz/plots/layer_sweep.ts";
export { plotPositionKl, type PositionKlRow } from "./lib/viz/plots/position_kl.ts";
export { plotProjection, type ProjectionPoint } from "./lib/viz/plots/projection.ts";
export { plotRateCurve, type RateRow as RateCurveRow } from "./lib/viz/plots/rate_curve.ts";
export { plotScatter, type ScatterRow } from "./lib/viz/plots/scatter.ts";
export {
  Figure,
  figureBundle,
  type JUPYTER_DISPLAY,
  type MimeBundle,
  show,
  tableBundle,
  type TableInput,
  type TableOptions,
  toBundle,
} from "./lib/viz/display.ts";
export {
  formatRate,
  type RateParts,
  RateTable,
  rateTable,
  type RateTableOptions,
  readableName,
} from "./lib/viz/table.ts";
export { Progress, progress, type ProgressMode } from "./lib/viz/progress.ts";
export { type AuditOptions, renderAudit } from "./lib/viz/audit.ts";
export { saveFigure, type SaveFigureOptions } from "./lib/viz/export.ts";
export {
  buildReport,
  type Report,
  type ReportSection,
  type ReportTable,
  writeReport,
} from "./lib/viz/report.ts";

export {
  DISTINCT_COLORS,
  hatchSmallN,
  integerAxis,
  nLabel,
  SERIES_COLORS,
  seriesColors,
  SMALL_N,
  withIntegerTicks,
  withSeriesColors,
} from "./lib/viz/palette.ts";
export {
  formatPercentInterval,
  formatRateCount,
  formatWithInterval,
} from "./lib/viz/format_rate.ts";

// ---- Files: safetensors, checkpoints ----
export {
  readModelWeights,
  readSafetensors,
  type SafetensorsDType,
  type SafetensorsFile,
  type TensorRecord,
  type TensorToWrite,
  writeSafetensors,
} from "./lib/io/safetensors.ts";
export {
  checkpointFolder,
  removeCheckpoint,
  removeCheckpointOrphans,
  writeCheckpointDir,
} from "./lib/io/checkpoint_dir.ts";
export {
  type FileFingerprint,
  fingerprintModel,
  type GitProvenance,
  gitProvenance,
  type ModelProvenance,
  type Provenance,
  provenance,
  type ProvenanceModelInput,
  type ProvenanceOptions,
  provenanceRows,
  shellQuote,
} from "./lib/io/provenance.ts";
