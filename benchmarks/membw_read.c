/* The machine's memory read bandwidth: benchmarks/membw.py compiles this file at run time (cc -O3
 * -march=native -pthread -shared -fPIC, into a temporary folder) and calls membw_read through ctypes.
 *
 * membw_read(buf, nbytes, threads, passes, pf_l1, pf_l2, streams, seconds, checksum): `threads` threads (the caller's, and
 * threads - 1 created once per call and held at a barrier between passes) each read a contiguous, page-
 * aligned share of `buf`. Thread 0 times a pass from the barrier that releases every thread to the barrier
 * every thread reaches when done, so a pass takes as long as its slowest thread. seconds[p] gets pass p's
 * time, *checksum the sum of every 8-byte word read (so that no load can be dropped). The loads are AVX2's
 * 32 bytes where the compiler targets AVX2 (else 8 bytes), into 8 independent accumulators, 4 cache lines per
 * iteration: the loop is bound by the memory system, not by an add chain. pf_l1 / pf_l2 (bytes, 0: none): software
 * prefetch of every line that far ahead into L1 / L2. (On the project's AMD EPYC, Zen 4: AVX-512 loads read ~10 %
 * slower on one thread, prefetch 512 B to 4 KiB ahead into L1 5-25 % slower; on an Intel Xeon whose L3 holds the
 * buffer the prefetch pair the ternary kernels use is faster; on the Zen 4 host again, 4 KiB ahead into L2 only
 * reads 15 % faster than plain; membw.py takes the best of its reads, pass by pass.) streams 2: each thread reads
 * the two halves of its share side by side, STREAM_CHUNK bytes of one, then of the other, as the ternary kernels
 * read a token's codes on one thread (ternary_kernels.STREAM_CHUNK_BLOCKS blocks of 128 bytes).
 * Returns 0, -1 for bad arguments, or pthread_create's error number.
 * membw_isa(): the loads this build uses.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define MAX_THREADS 64
#define STREAM_CHUNK 4096

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;  /* 0: threads still being created, 1: go, -1: a thread could not be created, every one returns */
    pthread_barrier_t bar;
} gate_t;

typedef struct {
    const uint8_t *lo, *hi;
    int id, passes;
    size_t pf_l1, pf_l2;
    int streams;
    double *seconds;
    uint64_t sum;
    gate_t *gate;
} job_t;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 256 bytes from p into the 8 accumulators (AVX2 builds) */
#define READ_256(p)                                                          \
    do {                                                                     \
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)((p) + 0)));   \
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)((p) + 32)));  \
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)((p) + 64)));  \
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)((p) + 96)));  \
        a4 = _mm256_add_epi64(a4, _mm256_load_si256((const __m256i *)((p) + 128))); \
        a5 = _mm256_add_epi64(a5, _mm256_load_si256((const __m256i *)((p) + 160))); \
        a6 = _mm256_add_epi64(a6, _mm256_load_si256((const __m256i *)((p) + 192))); \
        a7 = _mm256_add_epi64(a7, _mm256_load_si256((const __m256i *)((p) + 224))); \
    } while (0)

/* The sum of the 8-byte words of [p, hi); with pf_l1 / pf_l2 > 0, every cache line is also prefetched that many
 * bytes ahead into L1 (prefetcht0) / L2 (prefetcht1), as the ternary kernels prefetch their codes. */
static uint64_t read_range(const uint8_t *p, const uint8_t *hi, size_t pf_l1, size_t pf_l2) {
#if defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    if (pf_l1 == 0 && pf_l2 == 0) {
        for (; p + 256 <= hi; p += 256) READ_256(p);
    } else {
        for (; p + 256 <= hi; p += 256) {
            for (int line = 0; line < 256; line += 64) {
                if (pf_l1) _mm_prefetch((const char *)(p + pf_l1 + line), _MM_HINT_T0);
                if (pf_l2) _mm_prefetch((const char *)(p + pf_l2 + line), _MM_HINT_T1);
            }
            READ_256(p);
        }
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)),
                          _mm256_add_epi64(_mm256_add_epi64(a4, a5), _mm256_add_epi64(a6, a7)));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, a0);
    uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
#else
    (void)pf_l1;
    (void)pf_l2;
    uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; p + 64 <= hi; p += 64)
        for (int k = 0; k < 8; k++) a[k] += ((const uint64_t *)p)[k];
    uint64_t s = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
#endif
    for (; p + 8 <= hi; p += 8) s += *(const uint64_t *)p;  /* the tail (shares are multiples of 64 bytes) */
    return s;
}

/* read_range of [lo, hi) as its two halves side by side, STREAM_CHUNK bytes of one, then of the other */
static uint64_t read_two_streams(const uint8_t *lo, const uint8_t *hi, size_t pf_l1, size_t pf_l2) {
    size_t half = ((size_t)(hi - lo) / 2) & ~(size_t)(STREAM_CHUNK - 1);   /* chunks on page boundaries */
    const uint8_t *a = lo, *b = lo + half;
    uint64_t s = 0;
    for (; a + STREAM_CHUNK <= lo + half; a += STREAM_CHUNK, b += STREAM_CHUNK) {
        s += read_range(a, a + STREAM_CHUNK, pf_l1, pf_l2);
        s += read_range(b, b + STREAM_CHUNK, pf_l1, pf_l2);
    }
    return s + read_range(a, lo + half, pf_l1, pf_l2) + read_range(b, hi, pf_l1, pf_l2);
}

const char *membw_isa(void) {
#if defined(__AVX2__)
    return "AVX2 loads";
#else
    return "8-byte loads";
#endif
}

static void *worker(void *arg) {
    job_t *j = (job_t *)arg;
    pthread_mutex_lock(&j->gate->mu);
    while (j->gate->state == 0) pthread_cond_wait(&j->gate->cv, &j->gate->mu);
    int go = j->gate->state == 1;
    pthread_mutex_unlock(&j->gate->mu);
    if (!go) return NULL;
    for (int pass = 0; pass < j->passes; pass++) {
        pthread_barrier_wait(&j->gate->bar);
        double t0 = j->id == 0 ? now_s() : 0.0;
        if (j->streams == 2) j->sum += read_two_streams(j->lo, j->hi, j->pf_l1, j->pf_l2);
        else j->sum += read_range(j->lo, j->hi, j->pf_l1, j->pf_l2);
        pthread_barrier_wait(&j->gate->bar);
        if (j->id == 0) j->seconds[pass] = now_s() - t0;
    }
    return NULL;
}

int membw_read(const uint8_t *buf, size_t nbytes, int threads, int passes, size_t pf_l1, size_t pf_l2,
               int streams, double *seconds, uint64_t *checksum) {
    if (threads < 1 || threads > MAX_THREADS || passes < 1 || ((uintptr_t)buf & 63) != 0 || streams < 1 ||
        streams > 2)
        return -1;
    pthread_t tid[MAX_THREADS];
    job_t jobs[MAX_THREADS];
    gate_t gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    size_t share = (nbytes / (size_t)threads) & ~(size_t)(STREAM_CHUNK - 1);   /* shares on page boundaries */
    pthread_barrier_init(&gate.bar, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
        jobs[t].lo = buf + (size_t)t * share;
        jobs[t].hi = t == threads - 1 ? buf + nbytes : buf + (size_t)(t + 1) * share;
        jobs[t].id = t;
        jobs[t].passes = passes;
        jobs[t].pf_l1 = pf_l1;
        jobs[t].pf_l2 = pf_l2;
        jobs[t].streams = streams;
        jobs[t].seconds = seconds;
        jobs[t].sum = 0;
        jobs[t].gate = &gate;
    }
    int err = 0, started = 1;
    for (int t = 1; t < threads && !err; t++) {  /* thread 0 is the caller's */
        err = pthread_create(&tid[t], NULL, worker, &jobs[t]);
        if (!err) started++;
    }
    pthread_mutex_lock(&gate.mu);
    gate.state = err ? -1 : 1;  /* a thread missing: the others return before the first barrier */
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    if (err) {
        for (int t = 1; t < started; t++) pthread_join(tid[t], NULL);
        pthread_barrier_destroy(&gate.bar);
        return err;
    }
    worker(&jobs[0]);
    uint64_t s = jobs[0].sum;
    for (int t = 1; t < threads; t++) {
        pthread_join(tid[t], NULL);
        s += jobs[t].sum;
    }
    pthread_barrier_destroy(&gate.bar);
    *checksum = s;
    return 0;
}
