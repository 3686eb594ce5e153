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
export { CHECKPOINT_DIR, loadModel, type LoadOptions } from "./lib/model/load.ts";
export { createModel, type CreateOptions } from "./lib/model/create.ts";
export { Model, type ModelCapabilities } from "./lib/model/model.ts";
export { type ConfigSpec, makeConfig, type ModelConfig, parseConfig } from "./lib/model/config.ts";
export type {
  ForwardOptions,
  ForwardOutput,
  Intervention,
  KVCache,
} from "./lib/model/transformer.ts";
export type { ForcedSpan, GenerateOptions, GenerateResult } from "./lib/model/generate.ts";
export { type PoolOptions, type Replicable, WorkerError, WorkerPool } from "./lib/engine/pool.ts";
export {
  forwardOnWorkers,
  generateOnWorkers,
  type WorkerForwardOptions,
  type WorkerForwardOutput,
} from "./lib/model/workers.ts";
export {
  type ChatMessage,
  loadTokenizer,
  type TextTokenizer,
  tokenizerFromJson,
} from "./lib/model/tokenizer.ts";
export { readModelWeights, readSafetensors, writeSafetensors } from "./lib/model/safetensors.ts";
export { downloadHfModel } from "./lib/model/hub.ts";
export {
  discoverVariants,
  parseVariantArg,
  readVariantRecord,
  resolveVariants,
  saveVariant,
  type VariantInfo,
  type VariantRecord,
  type VariantSpec,
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
  loadRemoteModel,
  RemoteModel,
  type RemoteModelOptions,
  requireCapability,
} from "./lib/model/remote.ts";
export { serveRewards } from "./lib/serve/rewards.ts";
export { exportCompassForTorch } from "./lib/compass/export_torch.ts";

// Training
export {
  evalLoss,
  type SftExample,
  type SftLogRow,
  type SftOptions,
  type SftResult,
  trainSft,
} from "./lib/train/sft.ts";
export {
  AdamW,
  type AdamWOptions,
  type AdamWState,
  type StateLocation,
} from "./lib/train/adamw.ts";
export { GradientAccumulator } from "./lib/train/accumulate.ts";
export { lmLoss, padBatch, type TokenBatch, tokenLogprobs } from "./lib/train/loss.ts";
export {
  type DataParallelOptions,
  type DataParallelStep,
  DataParallelTrainer,
  type EncodedExample,
  evalLossOnWorkers,
  trainSftOnWorkers,
} from "./lib/train/parallel.ts";
export {
  makeRunLog,
  type RLLogRow,
  type RLOptions,
  type RLPerturbOptions,
  type RolloutRecord,
  type RunLog,
  trainRL,
} from "./lib/train/rl.ts";
export {
  alphaAlignReward,
  craftReward,
  latentOnly,
  type Reward,
  type RewardContext,
  type RewardFn,
  type RewardValue,
  textOnly,
  traitReward,
} from "./lib/train/rewards.ts";
export {
  perturbExamples,
  type PerturbOptions,
  perturbRollout,
  type RolloutPerturbOptions,
} from "./lib/train/perturb.ts";

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
  type BenchmarkName,
  loadBenchmark,
  loadJailbreakTemplates,
  loadPrompts,
  loadRefusalDirectionSplit,
  loadRefusalPrefixes,
} from "./lib/data/benchmarks.ts";
export { generateWorld, writeWorld } from "./lib/data/safetyworld/generate.ts";
export { loadSafetyWorld } from "./lib/data/safetyworld/load.ts";
export { gradeResponse } from "./lib/data/safetyworld/graders.ts";

// The compass
export { type Compass, fitProbe, loadCompass, type Pooling } from "./lib/compass/compass.ts";
export { type CraftOptions, fitCraft } from "./lib/compass/craft.ts";
export { layerSweep, type SweepRow } from "./lib/compass/sweep.ts";
export {
  Activations,
  collectActivations,
  type CollectOptions,
  collectPairs,
} from "./lib/compass/collect.ts";
export { collectOnWorkers } from "./lib/compass/collect_workers.ts";
export { fitCompass, type FitCompassOptions, sweepLayers } from "./lib/compass/fit.ts";
export { ablationInterventions, steeringVector, steerIntervention } from "./lib/compass/steer.ts";
export { auditGeneration, AuditResult } from "./lib/compass/audit.ts";
export {
  type CalibratedThreshold,
  exportAudit,
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
export { auroc, bootstrapCI, pearson, proportionCI, spearman } from "./lib/compass/metrics.ts";
export { type Matrix } from "./lib/compass/matrix.ts";

// Evaluation
export { isRefusalText, prefixRefusalJudge, refusalVerdict } from "./lib/eval/refusal.ts";
export {
  ALPHAALIGN_REFUSAL,
  extractAnswer,
  isAlphaAlignRefusal,
  verifyFormat,
  verifyThinkFormat,
} from "./lib/eval/format.ts";
export { profileModel, type RateRow } from "./lib/eval/profile.ts";
export { klByPosition, type PositionKl } from "./lib/eval/diagnostics.ts";
export {
  type AttackSpec,
  injectionAttack,
  jailbreakAttack,
  noAttack,
  prefillAttack,
  randomInsertionAttack,
  runAttack,
} from "./lib/eval/attacks.ts";
export {
  defaultJudge,
  type EvalJudge,
  EvalReport,
  type EvalSuite,
  evaluate,
  llmEvalJudge,
} from "./lib/eval/evaluate.ts";
export {
  injectionCurve,
  injectionPredictability,
  perPromptRate,
  prefillCurve,
} from "./lib/eval/injection.ts";
export { LlmJudge, type LlmJudgeOptions } from "./lib/eval/llm_judge.ts";
export { compareDefences, DEFENCE_VARIANTS, type DefenceOptions } from "./lib/eval/defences.ts";
export {
  followsInstruction,
  harmfulFineTune,
  type PersistenceOptions,
  type PersistenceRow,
  persistenceTable,
  PERSONA_TEMPLATES,
  personaRows,
  STEERING_INSTRUCTIONS,
} from "./lib/eval/persistence.ts";
export {
  type PersistenceFigureOptions,
  persistenceSummary,
  plotPersistence,
} from "./lib/eval/persistence_summary.ts";
export {
  fitMonitorCompass,
  measureMonitor,
  type MonitorCompass,
  type MonitorCompassOptions,
  type MonitorEval,
  type MonitorEvalOptions,
} from "./lib/eval/monitor_eval.ts";

// Plots, display, reports
export {
  plotBars,
  plotCurves,
  plotHeatmap,
  plotLayerSweep,
  type PlotlyFigure,
  plotPositionKl,
  plotProjection,
  plotRateCurve,
  plotScatter,
} from "./lib/viz/figure.ts";
export { Figure, figureBundle, show, tableBundle } from "./lib/viz/display.ts";
export { Progress, progress } from "./lib/viz/progress.ts";
export { renderAudit } from "./lib/viz/audit.ts";
export { saveFigure } from "./lib/viz/export.ts";
export { buildReport, writeReport } from "./lib/viz/report.ts";
