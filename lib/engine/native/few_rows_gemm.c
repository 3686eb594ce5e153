/*
 * safety-compass: single-precision products with few rows (decoding steps of large models).
 *
 * C[m, n] = A[m, k] B[k, n] or A[m, k] B[n, k]^T, row-major, m small (one row per sequence of
 * a decoding batch), B large (a weight matrix, read from memory once per call). BLAS libraries
 * pack B into cache-sized panels before multiplying, which for few rows reads and writes the
 * whole matrix once more; these kernels read B in place, streaming it once:
 *
 * - B [k, n] (GPT-2's [in, out] weights): columns in blocks of 3 vectors, rows of B in panels
 *   of KC; per block and panel, RB rows of A times KC rows of B into 3 x RB accumulators, with
 *   a software prefetch two blocks ahead (the panel's KC rows are KC streams at once).
 * - B [n, k]^T ([out, in] weights, the tied LM head): two columns of C at a time as dot
 *   products along k, each over RB rows of A, lane-strided partial sums summed by a fixed tree.
 *
 * Every C[i, j] is computed the same way whatever m, n, the row, the column block or the thread:
 * a fused multiply-add chain along k in order (B [k, n]), or VL lane chains then a fixed tree
 * (B^T). So a sequence's numbers do not depend on the batch it decodes in, nor on the thread
 * count. Exported with CBLAS's signatures (cblas_sgemm, cblas_sgemv) so a CBLAS caller can use
 * it as is; sgemv with unit strides, alpha 1 and beta 0 is the fast path's one-row product.
 * Arguments outside the fast path (transposed A, alpha != 1, beta != 0, other strides) take a
 * plain loop that is slow but correct; column-major calls are turned into row-major ones.
 *
 * Threads: a pool of sc_set_num_threads(n) - 1 workers, each spinning for up to a millisecond
 * after a call (decoding's next product comes sooner) and then sleeping on a condition variable; the calling thread
 * takes the first share. A call made while another thread is dispatching runs on its caller
 * alone (same numbers). Built by lib/engine/native_build.ts with the system C compiler.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <time.h>

#if defined(__AVX512F__)
#define VL 16 /* lanes per vector */
#define RB 8  /* rows of A per pass: 3 RB accumulators + 4 live vectors within 32 registers */
#elif defined(__AVX__)
#define VL 8
#define RB 4 /* 16 vector registers */
#elif defined(__x86_64__) || defined(__i386__)
#define VL 4 /* SSE */
#define RB 4
#else
#define VL 4
#define RB 8 /* NEON: 32 registers */
#endif
#define NB (3 * VL) /* columns per block (B [k, n]) */
#define KC 32       /* rows of B per panel (B [k, n]) */
#define PF (2 * NB) /* prefetch distance in floats, along a row of B */
#define MAX_THREADS 64

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vf;
#define load(p) _mm512_loadu_ps(p)
#define store(p, v) _mm512_storeu_ps(p, v)
#define splat(a) _mm512_set1_ps(a)
#define zero() _mm512_setzero_ps()
#define fma_v(a, b, c) _mm512_fmadd_ps(a, b, c) /* a b + c, one rounding */
#else
typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4), may_alias));
static inline vf load(const float* p) { return *(const vfu*)p; }
static inline void store(float* p, vf v) { *(vfu*)p = v; }
static inline vf splat(float a) { return (vf){0} + a; }
static inline vf zero(void) { return (vf){0}; }
#define fma_v(a, b, c) ((a) * (b) + (c)) /* one rounding where the CPU has FMA (-ffp-contract=fast) */
#endif

/* acc[r][0..2] += A[r, p] (b0 | b1 | b2) for the R rows: one row p of a block of B. */
#define NT_ROWS_TIMES_ROW_OF_B(R)                                                            \
  for (int r = 0; r < R; r++) {                                                              \
    vf a = splat(A[(size_t)r * lda + p]);                                                    \
    acc[r][0] = fma_v(a, b0, acc[r][0]);                                                     \
    acc[r][1] = fma_v(a, b1, acc[r][1]);                                                     \
    acc[r][2] = fma_v(a, b2, acc[r][2]);                                                     \
  }

/* One column block [j, j + NB) over k-panel [p0, p1), R rows (compile-time R). */
#define DEFINE_NT_BLOCK(R)                                                                   \
  static void nt_block_##R(const float* A, int lda, const float* B, int ldb, float* C,      \
                           int ldc, int j, int p0, int p1, int init) {                      \
    vf acc[R][3];                                                                           \
    for (int r = 0; r < R; r++)                                                             \
      for (int c = 0; c < 3; c++)                                                           \
        acc[r][c] = init ? zero() : load(C + (size_t)r * ldc + j + c * VL);                 \
    for (int p = p0; p < p1; p++) {                                                         \
      const float* b = B + (size_t)p * ldb + j;                                             \
      __builtin_prefetch(b + PF, 0, 3);                                                     \
      __builtin_prefetch(b + PF + VL, 0, 3);                                                \
      __builtin_prefetch(b + PF + 2 * VL, 0, 3);                                            \
      vf b0 = load(b), b1 = load(b + VL), b2 = load(b + 2 * VL);                            \
      NT_ROWS_TIMES_ROW_OF_B(R)                                                             \
    }                                                                                       \
    for (int r = 0; r < R; r++)                                                             \
      for (int c = 0; c < 3; c++) store(C + (size_t)r * ldc + j + c * VL, acc[r][c]);      \
  }

/* Two columns j, j + 1 of C = A B^T over R rows (compile-time R); `two` = 0: column j only. */
#define DEFINE_T_PAIR(R)                                                                     \
  static void t_pair_##R(const float* A, int lda, const float* W, int ldw, float* C, int ldc, \
                         int j, int k, int two) {                                           \
    vf acc[R][2];                                                                           \
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = zero();                             \
    const float* w0 = W + (size_t)j * ldw;                                                  \
    const float* w1 = two ? w0 + ldw : w0;                                                  \
    int p = 0;                                                                              \
    for (; p + VL <= k; p += VL) {                                                          \
      __builtin_prefetch(w0 + 2 * (size_t)ldw + p, 0, 3); /* the next pair's rows */        \
      __builtin_prefetch(w1 + 2 * (size_t)ldw + p, 0, 3);                                   \
      vf x0 = load(w0 + p), x1 = load(w1 + p);                                              \
      for (int r = 0; r < R; r++) {                                                         \
        vf a = load(A + (size_t)r * lda + p);                                               \
        acc[r][0] = fma_v(a, x0, acc[r][0]);                                                     \
        acc[r][1] = fma_v(a, x1, acc[r][1]);                                                     \
      }                                                                                     \
    }                                                                                       \
    if (p < k) { /* the tail as a zero-padded vector: same lanes as a full one */           \
      float t0[VL] = {0}, t1[VL] = {0};                                                     \
      memcpy(t0, w0 + p, (size_t)(k - p) * 4);                                              \
      memcpy(t1, w1 + p, (size_t)(k - p) * 4);                                              \
      vf x0 = load(t0), x1 = load(t1);                                                      \
      for (int r = 0; r < R; r++) {                                                         \
        float ta[VL] = {0};                                                                 \
        memcpy(ta, A + (size_t)r * lda + p, (size_t)(k - p) * 4);                           \
        vf a = load(ta);                                                                    \
        acc[r][0] = fma_v(a, x0, acc[r][0]);                                                     \
        acc[r][1] = fma_v(a, x1, acc[r][1]);                                                     \
      }                                                                                     \
    }                                                                                       \
    for (int r = 0; r < R; r++) {                                                           \
      C[(size_t)r * ldc + j] = tree_sum(acc[r][0]);                                         \
      if (two) C[(size_t)r * ldc + j + 1] = tree_sum(acc[r][1]);                            \
    }                                                                                       \
  }

/* Lanes summed by halves: (l0 + l(VL/2)), ... a fixed order on every build of one VL. */
static inline float tree_sum(vf v) {
  float x[VL];
  store(x, v);
  for (int w = VL / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; i++) x[i] = x[i] + x[i + w];
  return x[0];
}

#if defined(__AVX512F__)
/* The last, narrower block [j, j + width), width < NB: the block's code with masked loads and
 * stores, so each column is the same fused multiply-add chain as in a full block. */
#define DEFINE_NT_TAIL(R)                                                                    \
  static void nt_tail_##R(const float* A, int lda, const float* B, int ldb, float* C,       \
                          int ldc, int j, int p0, int p1, int width) {                      \
    __mmask16 mk[3];                                                                        \
    for (int c = 0; c < 3; c++) {                                                           \
      int w = width - c * VL;                                                               \
      mk[c] = w >= VL ? (__mmask16)0xFFFF : w <= 0 ? (__mmask16)0 : (__mmask16)((1u << w) - 1); \
    }                                                                                       \
    vf acc[R][3];                                                                           \
    for (int r = 0; r < R; r++)                                                             \
      for (int c = 0; c < 3; c++)                                                           \
        acc[r][c] = p0 == 0 ? zero()                                                        \
                            : _mm512_maskz_loadu_ps(mk[c], C + (size_t)r * ldc + j + c * VL); \
    for (int p = p0; p < p1; p++) {                                                         \
      const float* b = B + (size_t)p * ldb + j;                                             \
      vf b0 = _mm512_maskz_loadu_ps(mk[0], b), b1 = _mm512_maskz_loadu_ps(mk[1], b + VL);   \
      vf b2 = _mm512_maskz_loadu_ps(mk[2], b + 2 * VL);                                     \
      NT_ROWS_TIMES_ROW_OF_B(R)                                                             \
    }                                                                                       \
    for (int r = 0; r < R; r++)                                                             \
      for (int c = 0; c < 3; c++)                                                           \
        _mm512_mask_storeu_ps(C + (size_t)r * ldc + j + c * VL, mk[c], acc[r][c]);          \
  }
#endif

#define FOR_ROWS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8)
FOR_ROWS(DEFINE_NT_BLOCK)
FOR_ROWS(DEFINE_T_PAIR)
#if defined(__AVX512F__)
FOR_ROWS(DEFINE_NT_TAIL)
#endif

typedef void nt_fn(const float*, int, const float*, int, float*, int, int, int, int, int);
typedef void t_fn(const float*, int, const float*, int, float*, int, int, int, int);
#define NT_ENTRY(R) nt_block_##R,
#define T_ENTRY(R) t_pair_##R,
static nt_fn* const NT_BLOCK[] = {0, FOR_ROWS(NT_ENTRY)};
#if defined(__AVX512F__)
typedef void nt_tail_fn(const float*, int, const float*, int, float*, int, int, int, int, int);
#define NT_TAIL_ENTRY(R) nt_tail_##R,
static nt_tail_fn* const NT_TAIL[] = {0, FOR_ROWS(NT_TAIL_ENTRY)};
#endif
static t_fn* const T_PAIR[] = {0, FOR_ROWS(T_ENTRY)};

/* Columns [j0, j1) of C = A B (B [k, n]); j0 a multiple of NB. */
static void nt_range(int m, int k, const float* A, int lda, const float* B, int ldb, float* C,
                     int ldc, int j0, int j1) {
  int full = j0 + (j1 - j0) / NB * NB, width = j1 - full;
  for (int r0 = 0; r0 < m; r0 += RB) {
    int rows = m - r0 < RB ? m - r0 : RB;
    const float* a = A + (size_t)r0 * lda;
    float* c = C + (size_t)r0 * ldc;
    for (int p0 = 0; p0 < k; p0 += KC) {
      int p1 = p0 + KC < k ? p0 + KC : k;
      for (int j = j0; j < full; j += NB)
        NT_BLOCK[rows](a, lda, B, ldb, c, ldc, j, p0, p1, p0 == 0);
      if (width == 0) continue;
#if defined(__AVX512F__)
      NT_TAIL[rows](a, lda, B, ldb, c, ldc, full, p0, p1, width);
#else
      /* The last, narrower block through zero-padded copies: the same chains as a full one. */
      float bt[KC * NB], ct[RB * NB];
      memset(bt, 0, sizeof bt);
      memset(ct, 0, sizeof ct);
      for (int p = p0; p < p1; p++)
        memcpy(bt + (size_t)(p - p0) * NB, B + (size_t)p * ldb + full, (size_t)width * 4);
      if (p0 > 0)
        for (int r = 0; r < rows; r++)
          memcpy(ct + (size_t)r * NB, c + (size_t)r * ldc + full, (size_t)width * 4);
      NT_BLOCK[rows](a + p0, lda, bt, NB, ct, NB, 0, 0, p1 - p0, p0 == 0);
      for (int r = 0; r < rows; r++)
        memcpy(c + (size_t)r * ldc + full, ct + (size_t)r * NB, (size_t)width * 4);
#endif
    }
  }
}

/* Columns [j0, j1) of C = A W^T (W [n, k]). */
static void t_range(int m, int k, const float* A, int lda, const float* W, int ldw, float* C,
                    int ldc, int j0, int j1) {
  for (int r0 = 0; r0 < m; r0 += RB) {
    int rows = m - r0 < RB ? m - r0 : RB;
    for (int j = j0; j < j1; j += 2)
      T_PAIR[rows](A + (size_t)r0 * lda, lda, W, ldw, C + (size_t)r0 * ldc, ldc, j, k, j + 1 < j1);
  }
}

/* ---- the job and the pool ---- */

typedef struct {
  int m, n, k, lda, ldb, ldc, trans;
  const float *A, *B;
  float* C;
  int parts;
} job_t;

static job_t job;
static int want_threads = 1, workers = 0;
static const long spin_ns = 1000000; /* idle workers spin this long (ns), then sleep */
static pthread_t pool[MAX_THREADS];
static unsigned born[MAX_THREADS]; /* the generation before a worker's first job */
static atomic_uint generation;
static atomic_int finished;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t dispatching = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

/* Share `part` of `parts`: NT splits whole column blocks, T splits column pairs. */
static void run_part(const job_t* jb, int part, int parts) {
  int unit = jb->trans ? 2 : NB;
  int units = (jb->n + unit - 1) / unit;
  int u0 = (int)((long)units * part / parts), u1 = (int)((long)units * (part + 1) / parts);
  int j0 = u0 * unit, j1 = u1 * unit < jb->n ? u1 * unit : jb->n;
  if (j0 >= j1) return;
  if (jb->trans) t_range(jb->m, jb->k, jb->A, jb->lda, jb->B, jb->ldb, jb->C, jb->ldc, j0, j1);
  else nt_range(jb->m, jb->k, jb->A, jb->lda, jb->B, jb->ldb, jb->C, jb->ldc, j0, j1);
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void* worker_main(void* arg) {
  int id = (int)(intptr_t)arg; /* 1 .. workers */
  unsigned seen = born[id];
  for (;;) {
    unsigned g = atomic_load_explicit(&generation, memory_order_acquire);
    if (g == seen) {
      long until = now_ns() + spin_ns;
      for (int i = 0; (g = atomic_load_explicit(&generation, memory_order_acquire)) == seen; i++) {
        relax();
        if ((i & 63) == 63 && now_ns() > until) break;
      }
      if (g == seen) {
        pthread_mutex_lock(&mu);
        while ((g = atomic_load(&generation)) == seen) pthread_cond_wait(&wake, &mu);
        pthread_mutex_unlock(&mu);
      }
    }
    seen = g;
    job_t jb = job;
    if (id < jb.parts) run_part(&jb, id, jb.parts);
    atomic_fetch_add_explicit(&finished, 1, memory_order_release);
  }
  return 0;
}

/** Threads for later calls, the caller included (at least 1, at most 64). */
void sc_set_num_threads(int n) {
  want_threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

static void run(const job_t* jb) {
  long work = (long)jb->m * jb->n * jb->k;
  int parts = work < (1L << 18) ? 1 : want_threads;
  if (parts > 1 && pthread_mutex_trylock(&dispatching) == 0) {
    pthread_mutex_lock(&mu);
    while (workers < parts - 1) {
      born[workers + 1] = atomic_load(&generation);
      if (pthread_create(&pool[workers + 1], 0, worker_main, (void*)(intptr_t)(workers + 1)) != 0)
        break;
      workers++;
    }
    if (parts > workers + 1) parts = workers + 1;
    job = *jb;
    job.parts = parts;
    atomic_store(&finished, 0);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&mu);
    run_part(jb, 0, parts);
    /* Spin for the workers' shares; past a few thousand pauses the machine is oversubscribed
     * (a worker waits for a core): yield this one instead of burning it. */
    for (int i = 0; atomic_load_explicit(&finished, memory_order_acquire) < workers; i++) {
      if (i < 4096) relax();
      else sched_yield();
    }
    pthread_mutex_unlock(&dispatching);
  } else {
    run_part(jb, 0, 1);
  }
}

/* ---- CBLAS entry points ---- */

enum { ROW_MAJOR = 101, COL_MAJOR = 102, NO_TRANS = 111, TRANS = 112, CONJ_TRANS = 113 };

/* Any CBLAS sgemm, as a plain loop: C = alpha op(A) op(B) + beta C (row-major). */
static void general(int tA, int tB, int m, int n, int k, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float s = 0;
      for (int p = 0; p < k; p++)
        s = fmaf(tA ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p],
                 tB ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j], s);
      float* c = C + (size_t)i * ldc + j;
      *c = beta == 0 ? alpha * s : alpha * s + beta * *c;
    }
}

void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
                 const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (order == COL_MAJOR) { /* C^T = op(B)^T op(A)^T, row-major */
    cblas_sgemm(ROW_MAJOR, transB, transA, n, m, k, alpha, B, ldb, A, lda, beta, C, ldc);
    return;
  }
  int tA = transA != NO_TRANS, tB = transB != NO_TRANS;
  if (tA || alpha != 1 || beta != 0 || k <= 0) {
    general(tA, tB, m, n, k < 0 ? 0 : k, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  job_t jb = {m, n, k, lda, ldb, ldc, tB, A, B, C, 1};
  run(&jb);
}

void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float* A, int lda,
                 const float* x, int incx, float beta, float* y, int incy) {
  /* y = alpha op(A) x + beta y. Column-major A [m, n] is row-major A^T [n, m]. */
  int t = trans != NO_TRANS;
  if (order == COL_MAJOR) {
    int r = m;
    m = n;
    n = r;
    t = !t;
  }
  int lenx = t ? m : n, leny = t ? n : m;
  if (leny <= 0) return;
  if (alpha == 1 && beta == 0 && incx == 1 && incy == 1 && lenx > 0) {
    /* One row of the fast path: y^T = x^T A^T (A [m, n] as stored) or x^T A. */
    job_t jb = {1, leny, lenx, lenx, lda, leny, !t, x, A, y, 1};
    run(&jb);
    return;
  }
  /* BLAS strides: a negative one walks the vector from its end. */
  const float* x0 = incx < 0 ? x + (size_t)(lenx - 1) * (size_t)(-incx) : x;
  float* y0 = incy < 0 ? y + (size_t)(leny - 1) * (size_t)(-incy) : y;
  for (int j = 0; j < leny; j++) {
    float s = 0;
    for (int p = 0; p < lenx; p++)
      s = fmaf(x0[(ptrdiff_t)p * incx], t ? A[(size_t)p * lda + j] : A[(size_t)j * lda + p], s);
    float* c = y0 + (ptrdiff_t)j * incy;
    *c = beta == 0 ? alpha * s : alpha * s + beta * *c;
  }
}

/** The source's version: changes whenever the numbers or the ABI change. */
int sc_few_rows_version(void) { return 5; }
