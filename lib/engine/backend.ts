/**
 * Backend choice for the one tensor engine, TensorFlow.js.
 *
 * `auto` tries, in order: `tensorflow` (tfjs-node-gpu / tfjs-node, only when the user
 * installed them: detected, never required), `webgpu` (a real GPU adapter from Deno's
 * WebGPU; software adapters such as lavapipe only when asked), `wasm` (SIMD; the CPU
 * default, with OpenBLAS matmuls when the library is present) and `cpu` (pure JS). The
 * chosen backend and the reason are reported in {@link BackendInfo}.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
// The union package registers every gradient (tfjs-core alone registers none).
import "@tensorflow/tfjs";
import { registerWasmKernels } from "./kernels.ts";
import { registerFusedKernels } from "./fused.ts";
import { registerSimdKernels } from "./simd_kernels.ts";
import { registerLayoutKernels } from "./layout_kernels.ts";

/** A backend name, or `auto`. */
export type BackendName = "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";

/** What {@link initBackend} chose, and why. */
export interface BackendInfo {
  /** The tfjs backend now active. */
  name: Exclude<BackendName, "auto">;
  /** Why this backend was chosen (and why the ones before it were not). */
  reason: string;
  /** For wasm: whether SIMD is on. */
  simd?: boolean;
  /** For wasm: the native BLAS matmul kernel, if enabled. */
  blas?: {
    enabled: boolean;
    library?: string;
    reason: string;
    skinny?: string;
    skinnyKind?: "native" | "blis";
  };
  /** For webgpu: the adapter description. */
  adapter?: string;
}

/** Options for {@link initBackend}. */
export interface BackendOptions {
  /** Use a software WebGPU adapter (lavapipe, SwiftShader) if no GPU exists. @default false */
  allowSoftwareGpu?: boolean;
  /** Register OpenBLAS matmul kernels on wasm when available. @default true (env SAFETY_COMPASS_BLAS=0 disables) */
  blas?: boolean;
  /** BLAS threads (workers pass 1). @default all cores */
  blasThreads?: number;
}

let current: BackendInfo | undefined;

/** The backend chosen by the last {@link initBackend} call, if any. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

async function tryTensorflow(): Promise<string | undefined> {
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try {
      import.meta.resolve(pkg); // throws when the user has not mapped/installed it
    } catch {
      continue;
    }
    try {
      await import(pkg);
      if (await tf.setBackend("tensorflow")) return pkg;
    } catch (err) {
      console.warn(
        `safety-compass: ${pkg} is mapped but failed to load: ${(err as Error).message}`,
      );
    }
  }
  return undefined;
}

/**
 * On Linux without XDG_RUNTIME_DIR, Deno's WebGPU prints "error: XDG_RUNTIME_DIR is invalid or
 * not set in the environment" (twice) while it looks for a Wayland display, then finds the
 * adapters all the same. The probe runs with a placeholder value (a folder that does not exist:
 * no display is found, as without it) and the variable is removed again afterwards. Returns
 * the undo; a no-op where the variable is set, not readable, or not on Linux.
 */
function quietRuntimeDir(): () => void {
  const name = "XDG_RUNTIME_DIR";
  if (Deno.build.os !== "linux") return () => {};
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return () => {};
  }
  if (Deno.env.get(name)) return () => {};
  Deno.env.set(name, "/nonexistent/safety-compass-webgpu-probe");
  return () => Deno.env.delete(name);
}

async function tryWebgpu(allowSoftware: boolean): Promise<{ ok: boolean; why: string }> {
  const undo = quietRuntimeDir(); // tfjs's webgpu backend asks for an adapter again
  try {
    return await probeWebgpu(allowSoftware);
  } finally {
    undo();
  }
}

async function probeWebgpu(allowSoftware: boolean): Promise<{ ok: boolean; why: string }> {
  const gpu = (globalThis.navigator as unknown as { gpu?: GPU }).gpu;
  if (!gpu) return { ok: false, why: "no navigator.gpu (WebGPU unavailable)" };
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (err) {
    return { ok: false, why: `requestAdapter failed: ${(err as Error).message}` };
  }
  if (!adapter) return { ok: false, why: "no WebGPU adapter" };
  const info = adapter.info;
  const desc = `${info?.vendor ?? "?"} ${info?.device ?? ""} ${info?.description ?? ""}`.trim();
  const software = (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ||
    /llvmpipe|lavapipe|swiftshader|software/i.test(desc);
  if (software && !allowSoftware) {
    return { ok: false, why: `only a software adapter (${desc}); pass allowSoftwareGpu to use it` };
  }
  await import("@tensorflow/tfjs-backend-webgpu");
  if (!(await tf.setBackend("webgpu"))) return { ok: false, why: "tfjs webgpu backend failed" };
  return { ok: true, why: desc };
}

async function enableBlasIfWanted(opts: BackendOptions): Promise<BackendInfo["blas"]> {
  if (opts.blas === false) return { enabled: false, reason: "disabled by option" };
  try {
    const blas = await import("./blas.ts");
    return blas.enableBlas({ threads: opts.blasThreads });
  } catch (err) {
    return { enabled: false, reason: `BLAS kernel unavailable: ${(err as Error).message}` };
  }
}

/**
 * Chooses and activates a tfjs backend. Call once before loading a model (loadModel calls
 * it for you). Calling again with another name switches backend.
 */
export async function initBackend(
  name: BackendName = "auto",
  opts: BackendOptions = {},
): Promise<BackendInfo> {
  const notes: string[] = [];
  if (name === "tensorflow" || name === "auto") {
    const pkg = await tryTensorflow();
    if (pkg) return (current = { name: "tensorflow", reason: `${pkg} is installed` });
    if (name === "tensorflow") {
      throw new Error(
        "Cannot use backend 'tensorflow': neither @tensorflow/tfjs-node-gpu nor " +
          "@tensorflow/tfjs-node is installed (add one to deno.json imports; its install " +
          "downloads libtensorflow, which needs the internet).",
      );
    }
    notes.push("tensorflow: tfjs-node not installed");
  }
  if (name === "webgpu" || name === "auto") {
    const r = await tryWebgpu(name === "webgpu" || opts.allowSoftwareGpu === true);
    if (r.ok) {
      return (current = {
        name: "webgpu",
        reason: [...notes, `webgpu: adapter ${r.why}`].join("; "),
        adapter: r.why,
      });
    }
    if (name === "webgpu") throw new Error(`Cannot use backend 'webgpu': ${r.why}`);
    notes.push(`webgpu: ${r.why}`);
  }
  if (name === "wasm" || name === "auto") {
    if (await tf.setBackend("wasm")) {
      await tf.ready();
      registerWasmKernels();
      registerFusedKernels();
      registerSimdKernels(tf.backend());
      registerLayoutKernels(tf.backend());
      const simd = Boolean(await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"));
      const blas = await enableBlasIfWanted(opts);
      const few = !blas?.enabled || !blas.skinny
        ? ""
        : blas.skinnyKind === "native"
        ? " (native kernel for few rows)"
        : " (BLIS for few rows)";
      notes.push(`wasm: SIMD ${simd ? "on" : "off"}, BLAS ${blas?.enabled ? "on" : "off"}${few}`);
      return (current = { name: "wasm", reason: notes.join("; "), simd, blas });
    }
    if (name === "wasm") throw new Error("Cannot use backend 'wasm': tfjs wasm failed to start");
    notes.push("wasm: failed to start");
  }
  await tf.setBackend("cpu");
  await tf.ready();
  notes.push("cpu: pure JS (slow)");
  return (current = { name: "cpu", reason: notes.join("; ") });
}
