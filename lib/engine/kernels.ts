/**
 * Kernels that a tfjs backend lacks but the toolkit needs, registered at start-up.
 *
 * The wasm backend has no `UnsortedSegmentSum`, which is the gradient of `gather` (the
 * embedding lookup): without it no model with an embedding can be trained on wasm. The
 * kernel here is a plain scatter-add over the wasm heap.
 *
 * The wasm backend's `Identity` copies its input, and tfjs calls it for every tensor it keeps
 * for the backward pass (`saveTensorsForBackwardMode` clones them): every weight of a matmul
 * was duplicated in the 4 GiB heap while gradients were recorded. The replacement shares the
 * input's data (a reference count, as the cpu backend and wasm's own `Reshape` do); tensors
 * are immutable, so sharing is safe. Measured on GPT-2-small training at 1 x 128: peak heap
 * 3.32 -> 2.29 GiB, same loss and gradient norm.
 *
 * The wasm backend's `Cast` copies even when the type does not change, and tfjs's gradient of
 * every `mul` casts both saved inputs to float32 (`mul(dy, cast(b, "float32"))`): on a
 * SafetyWorld RL update that was six copies of an [N, 512] activation per GELU. A cast to the
 * tensor's own type now shares the data, as `Identity` does; other casts keep the stock kernel.
 * The values are the same bits either way. The stock kernel also cast to `bool` by copying
 * numbers into bytes (-2.25 became 254, 256 became 0, 0.5 became 0); a cast to `bool` is now
 * `x != 0`, as in TensorFlow and tfjs's cpu backend.
 *
 * The wasm backend's `Slice` copies its whole input out of the heap before cutting the slice
 * from the copy; the replacement copies only the slice's contiguous blocks. Measured on a
 * GPT-2-small forward (8 x 128, OpenBLAS): Slice kernel time 1.00 s -> 0.03 s, the forward
 * 3.96 s -> 2.81 s.
 *
 * The wasm backend's `Transpose` copies even for the identity permutation, which tfjs's gradient
 * of `gather` asks for (twice per embedding lookup); that case now shares the data too.
 *
 * {@link wasmHeapView} lets host-side code (gradient accumulation and AdamW with state in host
 * memory) read a tensor in the heap without copying it out: on GPT-2-small, 8 micro-batches of
 * 1 x 128 accumulated on the host went from 15.3 s to 11.7 s, the AdamW step from 2.7-3.4 s to
 * 2.0-2.5 s.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs-core";

/** The subset of the wasm backend's API the kernels below use. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  readSync(dataId: tf.DataId): ArrayLike<number>;
  incRef(dataId: tf.DataId): void;
}

/** `Identity` without a copy: the output shares the input's data (string tensors excepted). */
function identitySharedWasm(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown },
): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const x = args.inputs.x!;
  if (x.dtype === "string") {
    return tf.tensor(backend.readSync(x.dataId) as unknown as string[], x.shape, x.dtype);
  }
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let stockCast: tf.KernelFunc | undefined;

/** `Cast` to the input's own type without a copy; any other cast is the stock kernel's. */
function castWasm(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x!;
  const dtype = (args.attrs as { dtype: tf.DataType }).dtype;
  if (dtype === x.dtype && dtype !== "string") {
    (args.backend as WasmBackendLike).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }
  if (dtype === "bool" && x.dtype !== "string") {
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, "bool");
    const src = backend.typedArrayFromHeap(x), dst = backend.typedArrayFromHeap(out);
    for (let i = 0; i < src.length; i++) dst[i] = src[i] !== 0 ? 1 : 0;
    return out;
  }
  return stockCast!(args as Parameters<tf.KernelFunc>[0]);
}

function unsortedSegmentSumWasm(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const x = args.inputs.x!;
  const segmentIds = args.inputs.segmentIds!;
  const numSegments = (args.attrs as { numSegments: number }).numSegments;
  if (segmentIds.shape.length !== 1) {
    throw new Error(
      `UnsortedSegmentSum (wasm): segmentIds must be 1-D, got shape [${segmentIds.shape}]`,
    );
  }
  const n = x.shape[0];
  const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const ids = Int32Array.from(backend.readSync(segmentIds.dataId));
  const out = backend.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
  // Views are taken after makeOutput: growing the heap detaches older views.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  dst.fill(0);
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const so = i * inner;
    const d = s * inner;
    for (let j = 0; j < inner; j++) dst[d + j] += src[so + j];
  }
  return out;
}

/**
 * `Slice` that copies only the slice, straight between heap views. The stock wasm kernel first
 * copies its whole input out of the heap (`readSync`) and then cuts the slice from that copy:
 * for GPT-2-small's q|k|v cut (three slices of a [B*T, 3d] tensor per layer) that was a third
 * of a forward pass's kernel time. Here the slice is a run of contiguous blocks (the trailing
 * dimensions the slice takes whole, merged) copied with `TypedArray.set`.
 */
function sliceWasm(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const x = args.inputs.x!;
  if (x.dtype === "string") return stockSlice!(args as never) as tf.TensorInfo;
  const attrs = args.attrs as { begin: number | number[]; size?: number | number[] };
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
  const out = backend.makeOutput(size, x.dtype);
  const n = size.reduce((a, b) => a * b, 1);
  if (n === 0) return out;
  // Views are taken after makeOutput: growing the heap detaches older views.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const rank = x.shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return out;
  }
  const strides = [...tf.util.computeStrides(x.shape), 1];
  // Dimensions after j are taken whole: one block spans dims j..rank-1.
  let j = rank - 1;
  while (j > 0 && size[j] === x.shape[j]) j--;
  const block = size.slice(j).reduce((a, b) => a * b, 1);
  let start = 0;
  for (let d = 0; d < rank; d++) start += begin[d] * strides[d];
  const idx = new Array<number>(j).fill(0);
  for (let o = 0; o < n; o += block) {
    let off = start;
    for (let d = 0; d < j; d++) off += idx[d] * strides[d];
    dst.set(src.subarray(off, off + block), o);
    for (let d = j - 1; d >= 0 && ++idx[d] === size[d]; d--) idx[d] = 0;
  }
  return out;
}

/**
 * `GatherV2` as block copies between heap views: for each batch, outer index and gathered
 * index, one contiguous run of the trailing dimensions. The stock wasm kernel spends about
 * 140 us gathering 16 rows of a [664, 128] embedding and 9 ms for 2048 rows (it reads its whole
 * input; a decoding step gathers twice, a training forward over 2048 tokens too); this copies
 * only the rows (27 us and 0.33 ms). It also gets `batchDims` right, which the stock wasm
 * kernel (tfjs 4.22) does not: `gather([[1, 2], [3, 4]], [[1], [0]], 1, 1)` gave
 * `[[2], [2.4e-44]]` there. Indices outside [0, size) are an error naming the index, as on
 * the cpu backend.
 */
function gatherWasm(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const x = args.inputs.x!, indices = args.inputs.indices!;
  const attrs = args.attrs as { axis: number; batchDims?: number };
  if (x.dtype === "string") return stockGather!(args as never) as tf.TensorInfo;
  const batchDims = attrs.batchDims ?? 0;
  const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0];
  const prod = (d: number[]) => d.reduce((a, b) => a * b, 1);
  const dim = x.shape[axis];
  const batch = prod(x.shape.slice(0, batchDims));
  const outer = prod(x.shape.slice(batchDims, axis));
  const inner = prod(x.shape.slice(axis + 1));
  const m = prod(indices.shape.slice(batchDims));
  // Copied: makeOutput may grow the heap and detach this view.
  const idx = Int32Array.from(backend.readSync(indices.dataId));
  for (const i of idx) {
    if (i < 0 || i >= dim) {
      throw new Error(`GatherV2: the index value ${i} is not in [0, ${dim - 1}]`);
    }
  }
  const out = backend.makeOutput(
    [...x.shape.slice(0, axis), ...indices.shape.slice(batchDims), ...x.shape.slice(axis + 1)],
    x.dtype,
  );
  if (batch * outer * m * inner === 0) return out;
  // Views are taken after makeOutput: growing the heap detaches older views.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outer; o++) {
      const row = (b * outer + o) * dim, to = (b * outer + o) * m;
      for (let i = 0; i < m; i++) {
        const from = (row + idx[b * m + i]) * inner;
        dst.set(src.subarray(from, from + inner), (to + i) * inner);
      }
    }
  }
  return out;
}

let stockTranspose: tf.KernelFunc | undefined;

/**
 * `Transpose` by the identity permutation without a copy (the output shares the input's data,
 * as `Identity` does); any other permutation is the stock kernel's. tfjs's gradient of `gather`
 * transposes its dense result by the identity: for GPT-2-small's tied embedding that copied
 * 154 MB per micro-batch (27 ms, about 0.1 s of a training step).
 */
function transposeWasm(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const { perm } = args.attrs as { perm: number[] };
  if (perm.every((p, i) => p === i)) return identitySharedWasm(args);
  return stockTranspose!(args as never) as tf.TensorInfo;
}

let stockSlice: tf.KernelFunc | undefined;
let stockGather: tf.KernelFunc | undefined;
let registered = false;

/** Registers `fn` as the wasm backend's `name` kernel; returns the stock one it replaces. */
function replaceKernel(name: string, fn: unknown): tf.KernelFunc | undefined {
  const stock = tf.getKernel(name, "wasm")?.kernelFunc;
  if (stock !== undefined) tf.unregisterKernel(name, "wasm");
  tf.registerKernel({ kernelName: name, backendName: "wasm", kernelFunc: fn as tf.KernelFunc });
  return stock;
}

/** Registers the missing kernels on the wasm backend (idempotent). */
export function registerWasmKernels(): void {
  if (registered) return;
  if (tf.getKernel("UnsortedSegmentSum", "wasm") === undefined) {
    tf.registerKernel({
      kernelName: "UnsortedSegmentSum",
      backendName: "wasm",
      kernelFunc: unsortedSegmentSumWasm as unknown as tf.KernelFunc,
    });
  }
  if (tf.getKernel("Identity", "wasm") !== undefined) tf.unregisterKernel("Identity", "wasm");
  tf.registerKernel({
    kernelName: "Identity",
    backendName: "wasm",
    kernelFunc: identitySharedWasm as unknown as tf.KernelFunc,
  });
  stockSlice = replaceKernel("Slice", sliceWasm);
  stockCast = replaceKernel("Cast", castWasm);
  stockGather = replaceKernel("GatherV2", gatherWasm);
  stockTranspose = replaceKernel("Transpose", transposeWasm);
  registered = true;
}

/**
 * A view of a float32 tensor's values in the wasm heap, without a copy; `undefined` when the
 * tensor is not a live float32 tensor of the wasm backend (read it with `data()` then). The
 * view is valid only until the next tfjs allocation (a growing heap detaches it) and until
 * the tensor is disposed: read it at once, and never write to it.
 */
export function wasmHeapView(t: tf.Tensor): Float32Array | undefined {
  if (t.dtype !== "float32" || t.isDisposed || tf.getBackend() !== "wasm") return undefined;
  const be = tf.backend() as unknown as Partial<WasmBackendLike> & {
    dataIdMap?: { has(id: tf.DataId): boolean };
  };
  if (!be.typedArrayFromHeap || !be.dataIdMap?.has(t.dataId)) return undefined;
  return be.typedArrayFromHeap({
    dataId: t.dataId,
    shape: t.shape,
    dtype: t.dtype,
  }) as Float32Array;
}
