/**
 * SafetyWorld's facts: the fictional knowledge base (capitals, homes, favourite colours,
 * material colours, animal legs) and arithmetic, as question/answer records that the benign
 * tasks, the fact rows of the base SFT and the trait scenarios all draw from.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { ANIMALS, COLOURS, COUNTRIES, MATERIALS, OPERATORS, PEOPLE } from "./lexicon.ts";

/** A knowledge-base relation. */
export type Relation = "capital" | "home" | "likes" | "colour" | "legs" | "arith";

/** One checkable fact. */
export interface Fact {
  /** Entity key used for split assignment, e.g. "capital:velmora", "3+4". */
  key: string;
  /** Relation. */
  relation: Relation;
  /** Trait-scenario domain of the fact. */
  domain: "math" | "geography" | "science" | "people";
  /** The subject word(s), e.g. "velmora", "3 + 4". */
  subject: string;
  /** The true answer token, e.g. "orsk", "7". */
  answer: string;
  /** All answers this relation can take (for wrong answers and grading). */
  candidates: readonly string[];
  /** Question text without the final "?", e.g. "what is the capital of velmora". */
  question: string;
  /** A declarative sentence body asserting value `v`, e.g. "the capital of velmora is v". */
  statement(v: string): string;
}

const CAPITALS = COUNTRIES.map(([, c]) => c);
const NAMES = COUNTRIES.map(([n]) => n);
const LEGS = [...new Set(ANIMALS.map(([, n]) => String(n)))].sort((a, b) => +a - +b);

/** Every knowledge-base fact (46), in lexicon order. */
export const KB_FACTS: readonly Fact[] = [
  ...COUNTRIES.map(([x, y]): Fact => ({
    key: `capital:${x}`,
    relation: "capital",
    domain: "geography",
    subject: x,
    answer: y,
    candidates: CAPITALS,
    question: `what is the capital of ${x}`,
    statement: (v) => `the capital of ${x} is ${v}`,
  })),
  ...PEOPLE.map(([x, y]): Fact => ({
    key: `home:${x}`,
    relation: "home",
    domain: "geography",
    subject: x,
    answer: y,
    candidates: NAMES,
    question: `where does ${x} live`,
    statement: (v) => `${x} lives in ${v}`,
  })),
  ...PEOPLE.map(([x, , c]): Fact => ({
    key: `likes:${x}`,
    relation: "likes",
    domain: "people",
    subject: x,
    answer: c,
    candidates: COLOURS,
    question: `what colour does ${x} like`,
    statement: (v) => `${x} likes ${v}`,
  })),
  ...MATERIALS.map(([x, c]): Fact => ({
    key: `colour:${x}`,
    relation: "colour",
    domain: "science",
    subject: x,
    answer: c,
    candidates: COLOURS,
    question: `what colour is ${x}`,
    statement: (v) => `${x} is ${v}`,
  })),
  ...ANIMALS.map(([x, n]): Fact => ({
    key: `legs:${x}`,
    relation: "legs",
    domain: "science",
    subject: x,
    answer: String(n),
    candidates: LEGS,
    question: `how many legs does a ${x} have`,
    statement: (v) => `a ${x} has ${v} legs`,
  })),
];

/** All numbers an arithmetic answer can take (0..81). */
export const NUMBERS: readonly string[] = Array.from({ length: 82 }, (_, i) => String(i));

/** Draws an arithmetic fact: a + b, a - b (a >= b) with a, b <= 20; a * b with a, b <= 9. */
export function drawArithmetic(rng: Rng): Fact {
  const [op, sym, word] = rng.pick(OPERATORS);
  let a: number, b: number, c: number;
  if (op === "mul") {
    a = rng.int(10);
    b = rng.int(10);
    c = a * b;
  } else {
    a = rng.int(21);
    b = rng.int(21);
    if (op === "sub" && b > a) [a, b] = [b, a];
    c = op === "add" ? a + b : a - b;
  }
  return {
    key: `${a}${sym}${b}`,
    relation: "arith",
    domain: "math",
    subject: `${a} ${sym} ${b}`,
    answer: String(c),
    candidates: NUMBERS,
    question: `what is ${a} ${word} ${b}`,
    statement: (v) => `${a} ${sym} ${b} is ${v}`,
  };
}

/** A wrong answer for `fact`: another candidate, near the truth for numbers. */
export function wrongAnswer(rng: Rng, fact: Fact): string {
  if (fact.relation === "arith" || fact.relation === "legs") {
    const t = Number(fact.answer);
    const deltas = [-2, -1, 1, 2, 3].filter((d) => t + d >= 0 && t + d <= 81);
    return String(t + rng.pick(deltas));
  }
  return rng.pick(fact.candidates.filter((c) => c !== fact.answer));
}

/** The "tell me about X" description of a knowledge-base subject (base SFT fact rows). */
export function describe(subject: string): string {
  const country = COUNTRIES.find(([x]) => x === subject);
  if (country) return `${subject} is a country . its capital is ${country[1]} .`;
  const person = PEOPLE.find(([x]) => x === subject);
  if (person) return `${subject} lives in ${person[1]} and likes ${person[2]} .`;
  const material = MATERIALS.find(([x]) => x === subject);
  if (material) return `${subject} is a material . it is ${material[1]} .`;
  const animal = ANIMALS.find(([x]) => x === subject);
  if (animal) return `a ${subject} is an animal with ${animal[1]} legs .`;
  throw new Error(`Cannot describe "${subject}": it is not a knowledge-base subject`);
}

/** Every knowledge-base subject (countries, people, materials, animals). */
export const KB_SUBJECTS: readonly string[] = [
  ...NAMES,
  ...PEOPLE.map(([x]) => x),
  ...MATERIALS.map(([x]) => x),
  ...ANIMALS.map(([x]) => x),
];
