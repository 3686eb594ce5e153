/**
 * Native kernels built from C sources in lib/engine/native/ with the system C compiler, once per
 * source, compiler and CPU, and cached as shared libraries for Deno's FFI. The build is optional
 * by design: where there is no compiler, no `--allow-run` for it, no write access to the cache
 * or no `--allow-ffi`, the caller gets a reason instead of a library and keeps its other path
 * (BLIS, OpenBLAS, wasm).
 *
 * The cache: `SAFETY_COMPASS_CACHE`, else `$XDG_CACHE_HOME/safety-compass`, else
 * `$HOME/.cache/safety-compass`; a library is named for an FNV-1a hash of its source, the flags,
 * the compiler's path and the CPU's flags (`-march=native` code must not meet another CPU).
 * Builds write a temporary file and rename it, so concurrent builds (processes, or workers of one
 * process) never load half a file.
 * `SAFETY_COMPASS_NATIVE=0` turns every native kernel off; `CC` picks the compiler.
 *
 * @module
 */

import { envVar } from "../io/env.ts";
import { granted } from "../io/permissions.ts";

/** What {@link buildNative} gives: the library's path, or why there is none. */
export interface NativeBuild {
  /** The built (or cached) shared library, when there is one. */
  path?: string;
  /** How it was obtained ("built", "cached"), or why there is none, with the fix. */
  reason: string;
}

/**
 * Compiler flags: optimised for this CPU, multiply-adds fused (the kernels count on it), and the
 * library marked NODELETE: a kernel may start threads that outlive the module that opened it (a
 * Deno Worker that terminates closes its libraries), and unmapping their code under them would
 * leave them running through whatever is mapped there next.
 */
export const NATIVE_FLAGS = [
  "-O3",
  "-march=native",
  "-ffp-contract=fast",
  "-fPIC",
  "-shared",
  "-pthread",
  "-Wl,-z,nodelete",
];

/** FNV-1a (64-bit, as two 32-bit halves) of a string, as 16 hex digits. */
function fnv1a64(text: string): string {
  let h0 = 0x84222325, h1 = 0xcbf29ce4; // offset basis, low and high halves
  const bytes = new TextEncoder().encode(text);
  for (const b of bytes) {
    h0 ^= b;
    // (h1:h0) * 0x100000001b3: low 0x1b3, high 0x100.
    const lo = h0 * 0x1b3;
    const hi = h1 * 0x1b3 + h0 * 0x100 + Math.floor(lo / 0x100000000);
    h0 = lo >>> 0;
    h1 = hi >>> 0;
  }
  return h1.toString(16).padStart(8, "0") + h0.toString(16).padStart(8, "0");
}

/**
 * The cache folder (see the module doc), or undefined without a home to put it in.
 *
 * @example
 * ```ts
 * import { nativeCacheDir } from "./native_build.ts";
 * console.log(nativeCacheDir()); // e.g. "/home/me/.cache/safety-compass"
 * ```
 */
export function nativeCacheDir(): string | undefined {
  const own = envVar("SAFETY_COMPASS_CACHE");
  if (own) return own;
  const xdg = envVar("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/safety-compass`;
  const home = envVar("HOME");
  return home ? `${home}/.cache/safety-compass` : undefined;
}

/** The CPU's identity for the cache key: model and flags on Linux, else the architecture. */
function cpuIdentity(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const field = (name: string) => info.match(new RegExp(`^${name}\\s*:(.*)$`, "m"))?.[1] ?? "";
    return `${Deno.build.arch} ${field("model name")} ${field("flags") || field("Features")}`;
  } catch {
    return Deno.build.arch;
  }
}

/** The compiler to use: `CC`, else the first of cc, gcc, clang that answers `--version`. */
function findCompiler(): { path?: string; reason: string } {
  const given = envVar("CC");
  const names = given ? [given] : ["cc", "gcc", "clang"];
  const runnable = names.filter((command) => granted({ name: "run", command }));
  if (runnable.length === 0) {
    return { reason: `no --allow-run for a C compiler (${names.join(", ")})` };
  }
  for (const c of runnable) {
    try {
      const out = new Deno.Command(c, { args: ["--version"], stdout: "piped", stderr: "null" })
        .outputSync();
      if (out.success) {
        const first = new TextDecoder().decode(out.stdout).split("\n")[0].trim();
        return { path: c, reason: first };
      }
    } catch {
      // not installed: the next
    }
  }
  return {
    reason: `no C compiler found (${names.join(", ")}; Debian/Ubuntu: apt install gcc)`,
  };
}

const built = new Map<string, NativeBuild>();

/**
 * The shared library built from `source` (a C file), compiling it on first use and caching it
 * (see the module doc). Never throws: without a library, `reason` says why and how to fix it.
 * One build per source and process: later calls return the first answer.
 *
 * @example
 * ```ts
 * import { buildNative } from "./native_build.ts";
 * const lib = buildNative(new URL("./native/few_rows_gemm.c", import.meta.url));
 * console.log(lib.path ?? `no native kernel: ${lib.reason}`);
 * ```
 */
export function buildNative(source: URL): NativeBuild {
  const known = built.get(source.href);
  if (known) return known;
  const result = build(source);
  built.set(source.href, result);
  return result;
}

function build(source: URL): NativeBuild {
  if (envVar("SAFETY_COMPASS_NATIVE")?.trim() === "0") {
    return { reason: "native kernels off: SAFETY_COMPASS_NATIVE=0" };
  }
  if (Deno.build.os === "windows") return { reason: "native kernels not built on Windows" };
  if (source.protocol !== "file:") return { reason: `source ${source.href} is not a local file` };
  const srcPath = decodeURIComponent(source.pathname);
  if (!granted({ name: "read", path: srcPath })) {
    return { reason: `no --allow-read for ${srcPath}` };
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(srcPath);
  } catch (e) {
    return { reason: `cannot read ${srcPath}: ${(e as Error).message}` };
  }
  const dir = nativeCacheDir();
  if (dir === undefined) {
    return { reason: "no cache folder: set SAFETY_COMPASS_CACHE, XDG_CACHE_HOME or HOME" };
  }
  const cc = findCompiler();
  const stem = srcPath.split("/").pop()!.replace(/\.c$/, "");
  const key = fnv1a64([text, NATIVE_FLAGS.join(" "), cc.path ?? "", cpuIdentity()].join("\n"));
  const path = `${dir}/${stem}-${key}.so`;
  if (!granted({ name: "ffi", path })) return { reason: `no --allow-ffi for ${path}` };
  if (granted({ name: "read", path })) {
    try {
      if (Deno.statSync(path).isFile) return { path, reason: `cached: ${path}` };
    } catch {
      // not built yet
    }
  }
  if (cc.path === undefined) return { reason: `not built: ${cc.reason}` };
  if (!granted({ name: "write", path: dir })) {
    return { reason: `not built: no --allow-write for ${dir}` };
  }
  // Unique per build: worker threads of one process share its pid.
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  try {
    Deno.mkdirSync(dir, { recursive: true });
    const out = new Deno.Command(cc.path, {
      args: [...NATIVE_FLAGS, "-o", tmp, srcPath, "-lm"],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
      return { reason: `not built: ${cc.path} failed on ${srcPath}: ${err}` };
    }
    Deno.renameSync(tmp, path);
  } catch (e) {
    return { reason: `not built: ${(e as Error).message}` };
  } finally {
    try {
      Deno.removeSync(tmp);
    } catch {
      // renamed, or never written
    }
  }
  return { path, reason: `built with ${cc.reason}: ${path}` };
}
