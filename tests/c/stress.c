/*
 * Thread stress of the C ABI (issue #17): N threads share one engine and, until a deadline,
 * pick actions at random (seeded per thread):
 *   run      a whole job of one of three configurations; the output must equal the one
 *            the same configuration gave in a serial run before the stress began;
 *   fail     calls that must fail (bad format, bad stride, wrong order); the engine's and
 *            the job's last-error strings are read and checked while other threads fail;
 *   cancel   a job cancelled at a random progress event, either from the callback itself or
 *            by the canceller thread (the callback waits until ttpo_job_cancel returned);
 *            a refused call (busy) is made after the cancel; the running call must return
 *            CANCELLED with no progress event after the cancel, and no output written;
 *   query    queries on a job while it is idle.
 * Prints the count of every action and outcome; exits non-zero on any violation. Run by
 * tests/c/run.sh under ASan+UBSan (and plain): docs/C-API.md states the rules it proves.
 *
 * usage: stress <tiny-model-dir> <photo.png> [seconds=60] [threads=8]
 */
#define _GNU_SOURCE
#include "ttpo.h"
#include "../../examples/c/png_io.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { W = 32, H = 24, CONFIGS = 3, MAX_THREADS = 64 };

static uint8_t *photo;
static uint32_t photo_w, photo_h;
static ttpo_engine *engine;
static uint8_t reference[CONFIGS][4 * W * H];
static double deadline;
static atomic_int violations;
static atomic_long n_run, n_fail, n_cancel_cb, n_cancel_thread, n_query;

#define VIOLATION(...) do { fprintf(stderr, "VIOLATION: " __VA_ARGS__); fputc('\n', stderr); atomic_fetch_add(&violations, 1); } while (0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t next_rand(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static ttpo_image input_view(int config) {
    uint32_t x = photo_w / 4 + 37u * (uint32_t)config, y = photo_h / 4 + 29u * (uint32_t)config;
    ttpo_image v = {photo + 4 * ((size_t)photo_w * y + x), W, H, (intptr_t)(4 * photo_w),
                    TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    return v;
}

static ttpo_job *make_job(int config) {
    ttpo_options *o = ttpo_options_new();
    const double strengths[2] = {0.3, 0.5};
    ttpo_options_set_steps(o, 6);
    ttpo_options_set_refine_steps(o, 6);
    ttpo_options_set_strengths(o, strengths, 2);
    ttpo_options_set_metrics(o, "piqe,sharpness");
    ttpo_options_set_seed(o, (uint64_t)config * 11u);
    ttpo_image in = input_view(config);
    ttpo_job *job = NULL;
    uint32_t st = ttpo_job_new(engine, o, &in, &job);
    ttpo_options_free(o);
    if (st != TTPO_STATUS_OK) { VIOLATION("ttpo_job_new: %s", ttpo_last_error()); return NULL; }
    return job;
}

static uint32_t run_config(int config, uint8_t *out) {
    ttpo_job *job = make_job(config);
    if (!job) return TTPO_STATUS_PANIC;
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    uint32_t st = ttpo_job_run(job, &ov);
    ttpo_job_free(job);
    return st;
}

/* ---- the canceller thread: cancels the job it is handed, then answers ---- */
static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ccv = PTHREAD_COND_INITIALIZER;
static ttpo_job *to_cancel;
static int cancel_ack, stop_canceller;

static void *canceller(void *arg) {
    (void)arg;
    pthread_mutex_lock(&cmu);
    for (;;) {
        while (!to_cancel && !stop_canceller) pthread_cond_wait(&ccv, &cmu);
        if (stop_canceller) break;
        if (ttpo_job_cancel(to_cancel) != TTPO_STATUS_OK) VIOLATION("ttpo_job_cancel failed");
        to_cancel = NULL;
        cancel_ack = 1;
        pthread_cond_broadcast(&ccv);
    }
    pthread_mutex_unlock(&cmu);
    return NULL;
}

/* Hands `job` to the canceller and waits until ttpo_job_cancel has returned. */
static void cancel_from_other_thread(ttpo_job *job) {
    pthread_mutex_lock(&cmu);
    while (to_cancel) pthread_cond_wait(&ccv, &cmu); /* one request at a time */
    to_cancel = job;
    cancel_ack = 0;
    pthread_cond_broadcast(&ccv);
    while (!cancel_ack) pthread_cond_wait(&ccv, &cmu);
    pthread_mutex_unlock(&cmu);
}

struct cancel_ctx { ttpo_job *job; int at, events, after, by_thread, busy_ok; };

static void cancel_progress(void *user, uint32_t stage, uint32_t step, uint32_t total, double f) {
    struct cancel_ctx *c = user;
    (void)stage; (void)step; (void)total; (void)f;
    c->events++;
    if (c->events > c->at) { c->after++; return; }
    if (c->events < c->at) return;
    if (c->by_thread) cancel_from_other_thread(c->job);
    else ttpo_job_cancel(c->job);
    /* A re-entrant call is refused and must not clear the cancel. */
    uint8_t out[4 * W * H];
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    c->busy_ok = ttpo_job_refine(c->job, &ov) == TTPO_STATUS_INVALID_STATE;
}

static void action_cancel(uint64_t *rng) {
    int config = (int)(next_rand(rng) % CONFIGS);
    ttpo_job *job = make_job(config);
    if (!job) return;
    struct cancel_ctx c = {job, 1 + (int)(next_rand(rng) % 12), 0, 0, (int)(next_rand(rng) & 1), 0};
    ttpo_job_set_progress_callback(job, cancel_progress, &c);
    uint8_t out[4 * W * H];
    memset(out, 0x77, sizeof out);
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    uint32_t st = ttpo_job_run(job, &ov);
    if (c.events >= c.at) {
        if (st != TTPO_STATUS_CANCELLED) VIOLATION("cancel at event %d (%s) lost: status %u", c.at, c.by_thread ? "thread" : "callback", st);
        if (c.after != 0) VIOLATION("%d progress events after the cancel", c.after);
        if (!c.busy_ok) VIOLATION("a re-entrant call was not refused as busy");
        if (out[0] != 0x77 || out[sizeof out - 1] != 0x77) VIOLATION("output written by a cancelled run");
        atomic_fetch_add(c.by_thread ? &n_cancel_thread : &n_cancel_cb, 1);
    } else if (st != TTPO_STATUS_OK) {
        VIOLATION("uncancelled run failed: %u", st);
    }
    ttpo_job_free(job);
}

static void action_run(uint64_t *rng) {
    int config = (int)(next_rand(rng) % CONFIGS);
    uint8_t out[4 * W * H];
    uint32_t st = run_config(config, out);
    if (st != TTPO_STATUS_OK) VIOLATION("run of config %d: status %u (%s)", config, st, ttpo_last_error());
    else if (memcmp(out, reference[config], sizeof out) != 0) VIOLATION("config %d differs from the serial run", config);
    atomic_fetch_add(&n_run, 1);
}

static void action_fail(uint64_t *rng) {
    uint8_t px[4 * 4 * 3] = {0};
    uint32_t format = 3 + (uint32_t)(next_rand(rng) % 5000);
    ttpo_image v = {px, 4, 4, 12, format, TTPO_LAYOUT_RGB};
    ttpo_job *job = NULL;
    if (ttpo_job_new(engine, NULL, &v, &job) != TTPO_STATUS_INVALID_ARGUMENT) VIOLATION("bad format accepted");
    const char *m = ttpo_engine_last_error(engine);
    if (!m || strncmp(m, "unknown pixel format ", 21) != 0) VIOLATION("engine last error: %s", m ? m : "(null)");
    char want[48];
    snprintf(want, sizeof want, "unknown pixel format %u", format);
    if (strcmp(ttpo_last_error(), want) != 0) VIOLATION("thread last error: %s", ttpo_last_error());
    v.format = TTPO_FORMAT_U8;
    v.stride = PTRDIFF_MIN;
    if (ttpo_job_new(engine, NULL, &v, &job) != TTPO_STATUS_INVALID_ARGUMENT) VIOLATION("PTRDIFF_MIN stride accepted");
    /* Wrong order on a fresh job. */
    job = make_job(0);
    if (!job) return;
    uint8_t out[4 * W * H];
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    if (ttpo_job_refine(job, &ov) != TTPO_STATUS_INVALID_STATE) VIOLATION("refine before candidates accepted");
    if (strstr(ttpo_job_last_error(job), "candidates") == NULL) VIOLATION("job last error: %s", ttpo_job_last_error(job));
    ttpo_job_free(job);
    atomic_fetch_add(&n_fail, 1);
}

static void action_query(uint64_t *rng) {
    (void)rng;
    ttpo_job *job = make_job(1);
    if (!job) return;
    uint32_t n = 9, w = 0, h = 0, p, d;
    if (ttpo_job_candidate_count(job, &n) != TTPO_STATUS_OK || n != 0) VIOLATION("candidate count before generate");
    if (ttpo_job_size(job, &w, &h) != TTPO_STATUS_OK || w != W || h != H) VIOLATION("job size");
    if (ttpo_job_get_choice(job, &p, &d) != TTPO_STATUS_INVALID_STATE) VIOLATION("choice before generate");
    ttpo_job_free(job);
    atomic_fetch_add(&n_query, 1);
}

static void *worker(void *arg) {
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)arg * 0xBF58476D1CE4E5B9ull;
    while (now() < deadline && atomic_load(&violations) < 20) {
        switch (next_rand(&rng) % 8) {
        case 0: case 1: case 2: action_run(&rng); break;
        case 3: case 4: case 5: action_cancel(&rng); break;
        case 6: action_fail(&rng); break;
        default: action_query(&rng); break;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s <tiny-model-dir> <photo.png> [seconds] [threads]\n", argv[0]); return 2; }
    double seconds = argc > 3 ? atof(argv[3]) : 60.0;
    int threads = argc > 4 ? atoi(argv[4]) : 8;
    if (threads < 1 || threads > MAX_THREADS) threads = 8;
    photo = png_read_rgba(argv[2], &photo_w, &photo_h);
    if (!photo) { fprintf(stderr, "cannot read %s\n", argv[2]); return 2; }
    if (ttpo_engine_new(argv[1], TTPO_DEVICE_CPU, 0, TTPO_PRECISION_F32, &engine) != TTPO_STATUS_OK) {
        fprintf(stderr, "engine: %s\n", ttpo_last_error());
        return 2;
    }
    for (int k = 0; k < CONFIGS; k++)
        if (run_config(k, reference[k]) != TTPO_STATUS_OK) { fprintf(stderr, "serial run %d failed: %s\n", k, ttpo_last_error()); return 1; }
    pthread_t c, t[MAX_THREADS];
    pthread_create(&c, NULL, canceller, NULL);
    double start = now();
    deadline = start + seconds;
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    pthread_mutex_lock(&cmu);
    stop_canceller = 1;
    pthread_cond_broadcast(&ccv);
    pthread_mutex_unlock(&cmu);
    pthread_join(c, NULL);
    ttpo_engine_free(engine);
    free(photo);
    long cancels = atomic_load(&n_cancel_cb) + atomic_load(&n_cancel_thread);
    printf("stress: %d threads, %.0f s: %ld runs equal to serial, %ld cancels honoured (%ld from the callback, %ld from another thread), %ld failing-call rounds, %ld query rounds, %d violations\n",
           threads, now() - start, atomic_load(&n_run), cancels, atomic_load(&n_cancel_cb),
           atomic_load(&n_cancel_thread), atomic_load(&n_fail), atomic_load(&n_query), atomic_load(&violations));
    if (atomic_load(&violations) || atomic_load(&n_run) == 0 || cancels == 0) return 1;
    return 0;
}
