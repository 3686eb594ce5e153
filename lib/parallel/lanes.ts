/**
 * Running async tasks a few at a time: the scheduling loop shared by `WorkerPool.map`
 * (one lane per worker) and the experiments' seed workers (lib/experiments/seed_jobs.ts).
 *
 * @module
 */

/**
 * Runs `tasks` in `lanes` lanes: each lane takes the next task when its last one ends (so long
 * and short tasks balance), and the results come back in task order. `onDone` runs after each
 * task, in completion order. After a failure no new task starts; the first error is thrown once
 * the tasks already running have finished.
 *
 * @example
 * ```ts
 * import { mapInLanes } from "./lanes.ts";
 * const squares = await mapInLanes([1, 2, 3], 2, async (x) => x * x);
 * console.log(squares); // [1, 4, 9]
 * ```
 */
export async function mapInLanes<T, R>(
  tasks: readonly T[],
  lanes: number,
  run: (task: T, lane: number, index: number) => Promise<R>,
  onDone?: (index: number, result: R) => void,
): Promise<R[]> {
  const out = new Array<R>(tasks.length);
  let next = 0;
  let failure: unknown;
  const lane = async (l: number) => {
    while (failure === undefined && next < tasks.length) {
      const i = next++;
      try {
        out[i] = await run(tasks[i], l, i);
        onDone?.(i, out[i]);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, tasks.length) }, (_, l) => lane(l)));
  if (failure !== undefined) throw failure;
  return out;
}
