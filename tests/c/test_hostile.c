/*
 * Regression tests for the defects a hostile/careless-caller run of the C ABI found
 * (issue #17). Each test failed before its fix:
 *   - a handle's last-error string freed by another thread's failing call while read
 *     (heap-use-after-free under ASan);
 *   - a cancel lost when a refused call (busy) reset it, from another thread and from
 *     inside the progress callback;
 *   - the choice callback could run its own job;
 *   - ttpo_job_size wrote one output before failing;
 *   - strides of PTRDIFF_MIN/PTRDIFF_MAX, or whose span overflows, crashed;
 *   - a 65536 x 65536 input with max_pixels raised aborted on allocation;
 *   - a non-UTF-8 TTPO_MODEL_DIR was reported as "not set".
 * Run by tests/c/run.sh plain, under ASan+UBSan and under valgrind.
 *
 * usage: test_hostile <tiny-model-dir> <photo.png> [test-name]   (one test, or all)
 */
#define _GNU_SOURCE
#include "ttpo.h"
#include "../../examples/c/png_io.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int failures = 0;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, ttpo_last_error()); failures++; } } while (0)
#define CHECK_STATUS(call, want) do { uint32_t st_ = (call); if (st_ != (uint32_t)(want)) { fprintf(stderr, "FAIL %s:%d: %s returned %u (%s), want %s (last error: %s)\n", __FILE__, __LINE__, #call, st_, ttpo_status_str(st_), #want, ttpo_last_error()); failures++; } } while (0)

static const char *model_dir;
static uint8_t *photo;
static uint32_t photo_w, photo_h;
enum { W = 40, H = 32 };

static ttpo_image crop_view(void) {
    ttpo_image v = {photo + 4 * (photo_w * (photo_h / 3) + photo_w / 3), W, H,
                    (intptr_t)(4 * photo_w), TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    return v;
}

static ttpo_options *fast_options(void) {
    ttpo_options *o = ttpo_options_new();
    const double strengths[2] = {0.3, 0.5};
    CHECK_STATUS(ttpo_options_set_steps(o, 8), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_refine_steps(o, 8), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_strengths(o, strengths, 2), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_metrics(o, "piqe,sharpness"), TTPO_STATUS_OK);
    return o;
}

static ttpo_job *new_job(ttpo_engine *engine) {
    ttpo_options *o = fast_options();
    ttpo_image in = crop_view();
    ttpo_job *job = NULL;
    CHECK_STATUS(ttpo_job_new(engine, o, &in, &job), TTPO_STATUS_OK);
    ttpo_options_free(o);
    return job;
}

/* ---- last-error strings read while other threads fail on the same handle ---- */
struct err_ctx { ttpo_engine *engine; uint32_t format; int bad; };

/* Rounds per thread: TTPO_HOSTILE_ROUNDS (default 3000; run.sh lowers it under valgrind,
 * which runs threads one at a time). */
static int rounds(void) {
    const char *r = getenv("TTPO_HOSTILE_ROUNDS");
    return r && atoi(r) > 0 ? atoi(r) : 3000;
}

static void *fail_and_read(void *arg) {
    struct err_ctx *c = arg;
    char want[64];
    snprintf(want, sizeof want, "unknown pixel format %u", c->format);
    uint8_t px[12] = {0};
    for (int i = 0, n = rounds(); i < n; i++) {
        ttpo_image v = {px, 2, 2, 6, c->format, TTPO_LAYOUT_RGB};
        ttpo_job *job = NULL;
        if (ttpo_job_new(c->engine, NULL, &v, &job) != TTPO_STATUS_INVALID_ARGUMENT) c->bad++;
        /* The engine's latest message may be another thread's; it must stay readable
         * (ASan: no heap-use-after-free) and be one of the messages the threads cause. */
        const char *m = ttpo_engine_last_error(c->engine);
        if (!m || strncmp(m, "unknown pixel format ", 21) != 0) c->bad++;
        size_t n = strlen(m);
        for (volatile int k = 0; k < 50; k++) { /* widen the window another thread could free in */ }
        if (strlen(m) != n) c->bad++;
        /* This thread's own failure is what ttpo_last_error() reports. */
        if (strcmp(ttpo_last_error(), want) != 0) c->bad++;
    }
    return NULL;
}

static void test_last_error_threads(ttpo_engine *engine) {
    enum { T = 4 };
    pthread_t t[T];
    struct err_ctx c[T];
    for (int i = 0; i < T; i++) {
        c[i].engine = engine;
        c[i].format = 3 + 1000u * (uint32_t)i; /* messages of different lengths */
        c[i].bad = 0;
        pthread_create(&t[i], NULL, fail_and_read, &c[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        CHECK(c[i].bad == 0);
    }
}

/* ---- a cancel is never lost ---- */
struct cancel_ctx {
    ttpo_job *job;
    int at, events, after, refused_status;
    int reentrant; /* cancel from inside the progress callback instead of another thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int requested, done;
};

static void *cancel_then_call(void *arg) {
    struct cancel_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->requested) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    ttpo_job_cancel(c->job);
    /* A call refused as busy must not clear the cancel it follows. */
    uint8_t out[4 * W * H];
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    c->refused_status = (int)ttpo_job_refine(c->job, &ov);
    ttpo_job_generate_candidates(c->job);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void cancel_progress(void *user, uint32_t stage, uint32_t step, uint32_t total, double f) {
    struct cancel_ctx *c = user;
    (void)stage; (void)step; (void)total; (void)f;
    c->events++;
    if (c->events < c->at) return;
    if (c->events > c->at) { c->after++; return; }
    if (c->reentrant) {
        uint8_t out[4 * W * H];
        ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
        ttpo_job_cancel(c->job);
        c->refused_status = (int)ttpo_job_refine(c->job, &ov);
        ttpo_job_run(c->job, &ov);
        ttpo_job_choose_auto(c->job);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->requested = 1;
    pthread_cond_broadcast(&c->cv);
    while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void test_cancel_not_lost(ttpo_engine *engine, int reentrant, int refine_stage) {
    ttpo_job *job = new_job(engine);
    if (refine_stage) CHECK_STATUS(ttpo_job_generate_candidates(job), TTPO_STATUS_OK);
    struct cancel_ctx c = {job, 3, 0, 0, -1, reentrant, PTHREAD_MUTEX_INITIALIZER,
                           PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t t;
    if (!reentrant) pthread_create(&t, NULL, cancel_then_call, &c);
    CHECK_STATUS(ttpo_job_set_progress_callback(job, cancel_progress, &c), TTPO_STATUS_OK);
    uint8_t out[4 * W * H];
    memset(out, 0x5A, sizeof out);
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    if (refine_stage)
        CHECK_STATUS(ttpo_job_refine(job, &ov), TTPO_STATUS_CANCELLED);
    else
        CHECK_STATUS(ttpo_job_generate_candidates(job), TTPO_STATUS_CANCELLED);
    if (!reentrant) pthread_join(t, NULL);
    CHECK(c.events == c.at);
    CHECK(c.after == 0);
    CHECK(c.refused_status == TTPO_STATUS_INVALID_STATE);
    CHECK(out[0] == 0x5A && out[sizeof out - 1] == 0x5A); /* no output on cancel */
    /* The next call starts uncancelled. */
    CHECK_STATUS(ttpo_job_set_progress_callback(job, NULL, NULL), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_run(job, &ov), TTPO_STATUS_OK);
    ttpo_job_free(job);
}

/* ---- the choice callback may query its job, not run or change it ---- */
static int cb_status[6];
static int32_t greedy_choice(void *user, const ttpo_job *job, uint32_t *p, uint32_t *d) {
    uint8_t out[4 * W * H];
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    uint32_t n = 0;
    (void)user;
    ttpo_job *mut = (ttpo_job *)job; /* a careless caller casts the const away */
    cb_status[0] = (int)ttpo_job_run(mut, &ov);
    cb_status[1] = (int)ttpo_job_generate_candidates(mut);
    cb_status[2] = (int)ttpo_job_choose(mut, 1, 0);
    cb_status[3] = (int)ttpo_job_refine(mut, &ov);
    cb_status[4] = (int)ttpo_job_set_progress_callback(mut, NULL, NULL);
    cb_status[5] = (int)ttpo_job_candidate_count(job, &n);
    *p = 1;
    *d = 0;
    return 0;
}

static void test_choice_callback_cannot_run(ttpo_engine *engine) {
    ttpo_job *job = new_job(engine);
    CHECK_STATUS(ttpo_job_set_choice_callback(job, greedy_choice, NULL), TTPO_STATUS_OK);
    uint8_t out[4 * W * H];
    ttpo_image ov = {out, W, H, 4 * W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    CHECK_STATUS(ttpo_job_run(job, &ov), TTPO_STATUS_OK);
    for (int i = 0; i < 5; i++) CHECK(cb_status[i] == TTPO_STATUS_INVALID_STATE);
    CHECK(cb_status[5] == TTPO_STATUS_OK);
    uint32_t p = 9, d = 9;
    CHECK_STATUS(ttpo_job_get_choice(job, &p, &d), TTPO_STATUS_OK);
    CHECK(p == 1 && d == 0);
    ttpo_job_free(job);
}

/* ---- outputs are written only on success ---- */
static void test_outputs_only_on_success(ttpo_engine *engine) {
    ttpo_job *job = new_job(engine);
    uint32_t w = 777, h = 777;
    CHECK_STATUS(ttpo_job_size(job, &w, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK(w == 777);
    CHECK_STATUS(ttpo_job_size(job, NULL, &h), TTPO_STATUS_NULL_POINTER);
    CHECK(h == 777);
    CHECK_STATUS(ttpo_job_size(job, &w, &h), TTPO_STATUS_OK);
    CHECK(w == W && h == H);
    ttpo_job_free(job);
}

/* ---- strides and sizes that would overflow or exhaust memory ---- */
static void test_hostile_views(ttpo_engine *engine) {
    ttpo_image in = crop_view();
    ttpo_job *job = (ttpo_job *)0x1;
    const intptr_t strides[] = {PTRDIFF_MIN, PTRDIFF_MAX, PTRDIFF_MIN + 1, PTRDIFF_MAX / 2,
                                -(PTRDIFF_MAX / 3), (intptr_t)1 << 62};
    for (size_t i = 0; i < sizeof strides / sizeof strides[0]; i++) {
        ttpo_image x = in;
        x.stride = strides[i];
        CHECK_STATUS(ttpo_job_new(engine, NULL, &x, &job), TTPO_STATUS_INVALID_ARGUMENT);
    }
    CHECK(job == (ttpo_job *)0x1);
    /* Output views too. */
    job = new_job(engine);
    CHECK_STATUS(ttpo_job_generate_candidates(job), TTPO_STATUS_OK);
    uint8_t out[4 * W * H];
    for (size_t i = 0; i < sizeof strides / sizeof strides[0]; i++) {
        ttpo_image ov = {out, W, H, strides[i], TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
        CHECK_STATUS(ttpo_job_candidate_image(job, 0, &ov), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ttpo_job_refine(job, &ov), TTPO_STATUS_INVALID_ARGUMENT);
    }
    ttpo_job_free(job);

    /* 65536 x 65536 grey with max_pixels raised: a status, not an abort. The view is
     * backed by a reserved (never touched) mapping, so even a reader that went ahead
     * would not fault. */
    size_t side = 65536;
    void *big = mmap(NULL, side * side, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(big != MAP_FAILED);
    if (big != MAP_FAILED) {
        ttpo_options *o = ttpo_options_new();
        CHECK_STATUS(ttpo_options_set_max_pixels(o, (uint64_t)side * side), TTPO_STATUS_OK);
        ttpo_image v = {big, (uint32_t)side, (uint32_t)side, (intptr_t)side, TTPO_FORMAT_U8, TTPO_LAYOUT_GRAY};
        job = (ttpo_job *)0x1;
        CHECK_STATUS(ttpo_job_new(engine, o, &v, &job), TTPO_STATUS_INVALID_IMAGE);
        CHECK(strstr(ttpo_last_error(), "memory") != NULL);
        CHECK(job == (ttpo_job *)0x1);
        ttpo_options_free(o);
        munmap(big, side * side);
    }
}

/* ---- a model folder named by non-UTF-8 bytes is a folder, not "not set" ---- */
static void test_non_utf8_model_dir(void) {
    ttpo_engine *e = (ttpo_engine *)0x1;
    setenv("TTPO_MODEL_DIR", "/nonexistent/mod\xff\xfe" "el", 1);
    CHECK_STATUS(ttpo_engine_new(NULL, TTPO_DEVICE_CPU, 0, 0, &e), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_last_error(), "not set") == NULL);
    CHECK(strstr(ttpo_last_error(), "/nonexistent/mod") != NULL);
    CHECK_STATUS(ttpo_engine_new("/nonexistent/\xc3\x28", TTPO_DEVICE_CPU, 0, 0, &e), TTPO_STATUS_MODEL_NOT_FOUND);
    unsetenv("TTPO_MODEL_DIR");
    CHECK_STATUS(ttpo_engine_new(NULL, TTPO_DEVICE_CPU, 0, 0, &e), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(ttpo_last_error(), "not set") != NULL);
    CHECK(e == (ttpo_engine *)0x1);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) { fprintf(stderr, "usage: %s <tiny-model-dir> <photo.png> [test]\n", argv[0]); return 2; }
    const char *only = argc == 4 ? argv[3] : NULL;
    model_dir = argv[1];
    photo = png_read_rgba(argv[2], &photo_w, &photo_h);
    if (!photo) { fprintf(stderr, "cannot read %s\n", argv[2]); return 2; }
    ttpo_engine *engine = NULL;
    CHECK_STATUS(ttpo_engine_new(model_dir, TTPO_DEVICE_CPU, 0, TTPO_PRECISION_AUTO, &engine), TTPO_STATUS_OK);
    if (!engine) return 1;
#define RUN(name, call) do { if (!only || strcmp(only, name) == 0) { call; } } while (0)
    RUN("last_error", test_last_error_threads(engine));
    RUN("cancel", (test_cancel_not_lost(engine, 0, 0), test_cancel_not_lost(engine, 1, 0),
                   test_cancel_not_lost(engine, 0, 1), test_cancel_not_lost(engine, 1, 1)));
    RUN("choice", test_choice_callback_cannot_run(engine));
    RUN("outputs", test_outputs_only_on_success(engine));
    RUN("views", test_hostile_views(engine));
    RUN("model_dir", test_non_utf8_model_dir());
    ttpo_engine_free(engine);
    free(photo);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("C hostile-input tests: all checks passed\n");
    return 0;
}
