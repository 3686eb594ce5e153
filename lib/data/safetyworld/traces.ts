/**
 * SafetyWorld's reasoning traces for fitting the safety compass (CRAFT, arXiv 2603.17305):
 * safe (the reasoning notices the hazard and refuses), unsafe (plans compliance and
 * complies) and rethink (starts down the unsafe path, then "wait , this is about X" and
 * refuses), in both templates: `think` (`<think> ... </think> answer`) and `alphaalign`
 * (`<safety_reasoning> ... </safety_reasoning> <answer> ... </answer>`, arXiv 2507.14987,
 * whose refusal answer is the fixed string of SCIENCE.md section 3 in world tokens).
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { TraceLabel, TraceTemplate } from "../schema.ts";
import { ALPHA_REFUSAL, hazardCategory } from "./lexicon.ts";
import { complianceAnswer, refusal } from "./harm.ts";

/** Wraps reasoning and answer in `template` ("think" or "alphaalign"). */
export function wrapTrace(template: TraceTemplate, reasoning: string, answer: string): string {
  if (template === "think") return `<think> ${reasoning} </think> ${answer}`;
  if (template === "alphaalign") {
    return `<safety_reasoning> ${reasoning} </safety_reasoning> <answer> ${answer} </answer>`;
  }
  return answer;
}

/** A trace for a harmful request about `item` with the given label, in `template`. */
export function harmfulTrace(
  rng: Rng,
  template: TraceTemplate,
  label: TraceLabel,
  item: string,
  category: string,
): string {
  const c = hazardCategory(category);
  const notice = rng.pick([
    `the user wants steps to ${rng.pick(c.verbs)} ${item} .`,
    `the request is about ${item} .`,
    `this asks how to ${rng.pick(c.verbs)} ${item} .`,
  ]);
  const danger = rng.pick([
    `${item} is a ${c.name} and it ${c.harm} .`,
    `${item} ${c.harm} .`,
    `${item} is dangerous . it ${c.harm} .`,
  ]);
  const refuse = template === "alphaalign"
    ? rng.pick(["this is harmful .", "this is harmful , so i must refuse ."])
    : rng.pick(["i should refuse .", "i must refuse .", "i will not help ."]);
  const refusalAnswer = template === "alphaalign" ? ALPHA_REFUSAL : refusal(rng, item, category);
  if (label === "safe") return wrapTrace(template, `${notice} ${danger} ${refuse}`, refusalAnswer);
  if (label === "unsafe") {
    const plan = rng.pick([
      "i will give the steps .",
      "i will help with this .",
      "i can list the steps .",
    ]);
    return wrapTrace(template, `${notice} ${plan}`, complianceAnswer(rng, item, category));
  }
  const part = rng.pick(c.parts);
  const start = rng.pick([
    `first i would get the ${part} and ${rng.pick(c.actions)} it .`,
    `i will help . the ${part} goes in first .`,
    `ok , i need the ${part} and some ${item} .`,
  ]);
  const wait = rng.pick([`wait , this is about ${item} .`, `wait , ${item} is not safe .`]);
  return wrapTrace(template, `${notice} ${start} ${wait} ${danger} ${refuse}`, refusalAnswer);
}

/** A safe (helpful) trace for a benign or borderline prompt with answer `answer`. */
export function benignTrace(
  rng: Rng,
  template: TraceTemplate,
  domain: string,
  answer: string,
  hazard?: string,
): string {
  const what = domain === "borderline"
    ? hazard
      ? rng.pick([
        `the user asks about ${hazard} but only wants to stay safe .`,
        `this mentions ${hazard} , but the user is not trying to make it .`,
      ])
      : rng.pick([
        "the words sound scary but the task is harmless .",
        "this is an everyday question .",
      ])
    : rng.pick([`this task is about ${domain} .`, `the user asks a ${domain} question .`]);
  const ok = template === "alphaalign"
    ? rng.pick(["it is safe .", "this is safe , so i will help ."])
    : rng.pick(["it is safe .", "i can help ."]);
  return wrapTrace(template, `${what} ${ok}`, answer);
}
