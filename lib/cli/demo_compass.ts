/**
 * The compass part of the demo: collect activations of SafetyWorld traces, sweep layers
 * and methods on held-out templates, and fit CRAFT's head at the last layer.
 *
 * @module
 */

import type { Model } from "../model/model.ts";
import type { World } from "../data/safetyworld/plan.ts";
import type { ReportSection } from "../viz/report.ts";

/** Runs the compass section; undefined while the compass modules are missing. */
export function runCompassSection(
  _model: Model,
  _world: World,
  _opts: { quick: boolean; log: (s: string) => void },
): Promise<{ section: ReportSection; metrics: unknown } | undefined> {
  return Promise.resolve(undefined);
}
