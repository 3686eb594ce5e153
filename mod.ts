/**
 * safety-compass: research on the safety of language models' reasoning, cell by cell.
 *
 * Load a model and read every layer's hidden states, collect contrastive safe / unsafe /
 * rethink traces, fit a safety compass on hidden states beside the classic probes, attack
 * and measure with intervals, and plot it inline in Jupyter.
 *
 * @example
 * ```ts
 * import { loadModel } from "./mod.ts";
 * const model = await loadModel("toy-base");             // a SafetyWorld checkpoint
 * const g = await model.generate({ prompts: ["what is 3 plus 4 ?"], maxNewTokens: 16 });
 * console.log(g.text[0]);
 * ```
 *
 * @module
 */

// Engine and models
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
export { type PoolOptions, type Replicable, WorkerError, WorkerPool } from "./lib/parallel/pool.ts";
export {
  forwardOnWorkers,
  generateOnWorkers,
  type WorkerForwardOptions,
  type WorkerForwardOutput,
} from "./lib/parallel/generate.ts";
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
export {
  readModelWeights,
  readSafetensors,
  type SafetensorsDType,
  type SafetensorsFile,
  type TensorRecord,
  type TensorToWrite,
  writeSafetensors,
} from "./lib/io/safetensors.ts";
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
export { exportCompassForTorch } from "./lib/compass/export_torch.ts";

// Training
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
export {
  checkpointFolder,
  removeCheckpoint,
  removeCheckpointOrphans,
  writeCheckpointDir,
} from "./lib/io/checkpoint_dir.ts";
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

// Data
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
  loadRefusalDirectionSplit,
  type RefusalSplitOptions,
} from "./lib/data/benchmarks/refusal_splits.ts";
export {
  loadRefusalPrefixes,
  type RefusalPrefixList,
} from "./lib/data/benchmarks/refusal_prefixes.ts";
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

// The compass
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
export {
  fitCompass,
  type FitCompassOptions,
  type LabelMapping,
  sweepLayers,
  type SweepLayersOptions,
} from "./lib/compass/fit.ts";
export { ablationInterventions, steeringVector, steerIntervention } from "./lib/compass/steer.ts";
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
export { type Matrix } from "./lib/compass/matrix.ts";

// Evaluation
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
export { profileModel, type ProfileOptions, type RateRow } from "./lib/experiments/profile.ts";
export { klByPosition, type PositionKl } from "./lib/eval/diagnostics.ts";
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
  type JudgeItem,
  type JudgeStats,
  type JudgeTemplate,
  type JudgeVerdict,
  LlmJudge,
  type LlmJudgeOptions,
  type ParsedVerdict,
} from "./lib/judges/llm_judge.ts";
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

// Plots, display, reports
// (figure.ts's `RateRow`, the row of `plotRateCurve`, is not lib/experiments/profile.ts's `RateRow`
// above; it is exported as `RateCurveRow`.)
export { type BarRow, plotBars } from "./lib/viz/plots/bars.ts";
export { type CurvesOptions, plotCurves } from "./lib/viz/plots/curves.ts";
export { type HeatmapOptions, plotHeatmap } from "./lib/viz/plots/heatmap.ts";
export { type LayerSweepRow, plotLayerSweep } from "./lib/viz/plots/layer_sweep.ts";
export {
  type PlotlyFigure,
  type PlotlyTrace,
  type RowsInput,
  type TitleOptions,
} from "./lib/viz/figure.ts";
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
} from "./lib/viz/display.ts";
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
