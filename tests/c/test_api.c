/*
 * C tests of libttpo through include/ttpo.h: the happy path on a tiny model and a real
 * photo, misuse of every export (NULLs, out-of-range enums, zero/absurd sizes, short
 * strides, wrong order), cancel from another thread, two engines on two threads. (A panic
 * inside a job is forced only in debug builds: tested in ffi/src/job.rs.) Run by
 * tests/c/run.sh (also under ASan+UBSan and valgrind).
 *
 * usage: test_api <tiny-model-dir> <photo.png> <expected-version>
 */
#define _POSIX_C_SOURCE 200809L
#include "ttpo.h"
#include "../../examples/c/png_io.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, ttpo_last_error()); failures++; } } while (0)
#define CHECK_STATUS(call, want) do { uint32_t st_ = (call); if (st_ != (uint32_t)(want)) { fprintf(stderr, "FAIL %s:%d: %s returned %u (%s), want %s (last error: %s)\n", __FILE__, __LINE__, #call, st_, ttpo_status_str(st_), #want, ttpo_last_error()); failures++; } } while (0)

static const char *model_dir;
static uint8_t *photo;
static uint32_t photo_w, photo_h;

/* A small crop of the photo keeps the tests fast (and valgrind bearable). */
enum { CROP_W = 48, CROP_H = 40 };

static ttpo_image crop_view(void) {
    ttpo_image v;
    v.data = photo + 4 * (photo_w * (photo_h / 3) + photo_w / 3);
    v.width = CROP_W;
    v.height = CROP_H;
    v.stride = (intptr_t)(4 * photo_w);
    v.format = TTPO_FORMAT_U8;
    v.layout = TTPO_LAYOUT_RGBA;
    return v;
}

static ttpo_options *fast_options(void) {
    ttpo_options *o = ttpo_options_new();
    const double strengths[2] = {0.3, 0.5};
    CHECK(o != NULL);
    CHECK_STATUS(ttpo_options_set_steps(o, 6), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_refine_steps(o, 6), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_strengths(o, strengths, 2), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_metrics(o, "piqe,sharpness"), TTPO_STATUS_OK);
    return o;
}

static void test_version(const char *expected) {
    char macro[64];
    snprintf(macro, sizeof macro, "%d.%d.%d", TTPO_VERSION_MAJOR, TTPO_VERSION_MINOR, TTPO_VERSION_PATCH);
    CHECK(strcmp(macro, expected) == 0);
    CHECK(strcmp(ttpo_version(), expected) == 0);
    CHECK(ttpo_version_number() == (uint32_t)(TTPO_VERSION_MAJOR * 10000 + TTPO_VERSION_MINOR * 100 + TTPO_VERSION_PATCH));
    CHECK(ttpo_version_api() == TTPO_ABI_VERSION);
    CHECK((ttpo_backends() & TTPO_BACKEND_CPU) != 0);
    CHECK(strcmp(ttpo_status_str(TTPO_STATUS_OK), "ok") == 0);
    CHECK(strcmp(ttpo_status_str(12345), "unknown status") == 0);
}

static int progress_events;
static void count_progress(void *user, uint32_t stage, uint32_t step, uint32_t total, double fraction) {
    (void)user; (void)stage;
    CHECK(step <= total);
    CHECK(fraction >= 0.0 && fraction <= 1.0);
    progress_events++;
}

static void test_happy_path(ttpo_engine *engine) {
    ttpo_options *o = fast_options();
    ttpo_image in = crop_view();
    ttpo_job *job = NULL;
    CHECK_STATUS(ttpo_job_new(engine, o, &in, &job), TTPO_STATUS_OK);
    ttpo_options_free(o);
    CHECK(job != NULL);
    CHECK_STATUS(ttpo_job_set_progress_callback(job, count_progress, NULL), TTPO_STATUS_OK);
    uint32_t w = 0, h = 0, n = 0, m = 0, p = 99, d = 99;
    CHECK_STATUS(ttpo_job_size(job, &w, &h), TTPO_STATUS_OK);
    CHECK(w == CROP_W && h == CROP_H);
    /* The estimate before the job: every stage takes time, the parts add up to the total;
       without a place for the total it is refused. It makes no progress events. */
    double total = -1, stages[3] = {-1, -1, -1}, again = -1;
    CHECK_STATUS(ttpo_job_estimate(job, NULL, stages), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_estimate(NULL, &total, stages), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_estimate(job, &total, stages), TTPO_STATUS_OK);
    CHECK(stages[0] > 0 && stages[1] > 0 && stages[2] > 0);
    CHECK(fabs(total - (stages[0] + stages[1] + stages[2])) <= 1e-9 * total);
    CHECK_STATUS(ttpo_job_estimate(job, &again, NULL), TTPO_STATUS_OK);
    CHECK(again > 0);
    CHECK(progress_events == 0);
    CHECK_STATUS(ttpo_job_generate_candidates(job), TTPO_STATUS_OK);
    CHECK(progress_events > 0);
    /* Stage I and II done: only Stage III is left. */
    CHECK_STATUS(ttpo_job_estimate(job, &total, stages), TTPO_STATUS_OK);
    CHECK(stages[0] == 0 && stages[1] == 0 && stages[2] > 0 && total == stages[2]);
    CHECK_STATUS(ttpo_job_candidate_count(job, &n), TTPO_STATUS_OK);
    CHECK(n == 3);
    CHECK_STATUS(ttpo_job_metric_count(job, &m), TTPO_STATUS_OK);
    CHECK(m == 2);
    CHECK(ttpo_job_metric_name(job, 0) && strcmp(ttpo_job_metric_name(job, 0), "piqe") == 0);
    CHECK(ttpo_job_metric_name(job, 2) == NULL);
    double strength = -1, score = 0, metric = 0;
    uint64_t seed = 7;
    CHECK_STATUS(ttpo_job_candidate_info(job, 0, &strength, &seed, &score), TTPO_STATUS_OK);
    CHECK(strength == 0.0 && seed == 0);
    CHECK_STATUS(ttpo_job_candidate_info(job, 2, &strength, NULL, NULL), TTPO_STATUS_OK);
    CHECK(strength == 0.5);
    CHECK_STATUS(ttpo_job_candidate_metric(job, 1, 0, &metric), TTPO_STATUS_OK);
    CHECK(metric >= 0.0 && metric <= 100.0);
    CHECK_STATUS(ttpo_job_get_choice(job, &p, &d), TTPO_STATUS_OK);
    CHECK(p < n && d < n);

    /* Candidate 0 is the input: RGBA u8 round trip is exact, alpha included. */
    uint8_t *cand = malloc(4 * CROP_W * CROP_H);
    ttpo_image cv = {cand, CROP_W, CROP_H, 4 * CROP_W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    CHECK_STATUS(ttpo_job_candidate_image(job, 0, &cv), TTPO_STATUS_OK);
    int same = 1;
    for (uint32_t y = 0; y < CROP_H; y++)
        if (memcmp(cand + 4 * CROP_W * y, (uint8_t *)in.data + in.stride * (intptr_t)y, 4 * CROP_W) != 0) same = 0;
    CHECK(same);

    /* Refine into float RGB with a bottom-up (negative) stride, then into u16 grey. */
    float *outf = malloc(sizeof(float) * 3 * CROP_W * CROP_H);
    for (size_t i = 0; i < 3 * CROP_W * CROP_H; i++) outf[i] = -1.0f;
    ttpo_image of = {outf + 3 * CROP_W * (CROP_H - 1), CROP_W, CROP_H, -(intptr_t)(sizeof(float) * 3 * CROP_W), TTPO_FORMAT_F32, TTPO_LAYOUT_RGB};
    CHECK_STATUS(ttpo_job_refine(job, &of), TTPO_STATUS_OK);
    int in_range = 1;
    for (size_t i = 0; i < 3 * CROP_W * CROP_H; i++) if (!(outf[i] >= 0.0f && outf[i] <= 1.0f)) in_range = 0;
    CHECK(in_range);
    uint16_t *g = malloc(2 * CROP_W * CROP_H);
    ttpo_image og = {g, CROP_W, CROP_H, 2 * CROP_W, TTPO_FORMAT_U16, TTPO_LAYOUT_GRAY};
    CHECK_STATUS(ttpo_job_choose(job, 1, 2), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_refine(job, &og), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_get_choice(job, &p, &d), TTPO_STATUS_OK);
    CHECK(p == 1 && d == 2);
    free(cand); free(outf); free(g);
    ttpo_job_free(job);
}

/* Every export with NULLs, bad enums, bad sizes, bad strides, wrong order. */
static void test_misuse(ttpo_engine *engine) {
    ttpo_engine *e = (ttpo_engine *)0x1;
    CHECK_STATUS(ttpo_engine_new(model_dir, 0, 0, 0, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_engine_new(model_dir, 99, 0, 0, &e), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK(e == (ttpo_engine *)0x1); /* untouched on failure */
    CHECK_STATUS(ttpo_engine_new(model_dir, TTPO_DEVICE_CPU, 0, 42, &e), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_engine_new("/nonexistent/model", TTPO_DEVICE_CPU, 0, 0, &e), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_last_error(), "/nonexistent/model") != NULL);
    CHECK_STATUS(ttpo_engine_new(model_dir, TTPO_DEVICE_CUDA, 0, 0, &e), ttpo_backends() & TTPO_BACKEND_CUDA ? TTPO_STATUS_OK : TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_engine_new(model_dir, TTPO_DEVICE_CPU, 0, TTPO_PRECISION_BF16, &e), TTPO_STATUS_INVALID_ARGUMENT);
    ttpo_engine_free(NULL);
    ttpo_options_free(NULL);
    ttpo_job_free(NULL);
    CHECK(ttpo_engine_last_error(NULL) == NULL);
    CHECK(ttpo_job_last_error(NULL) == NULL);

    ttpo_options *o = ttpo_options_new();
    CHECK_STATUS(ttpo_options_set_steps(NULL, 5), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_options_set_steps(o, 0), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_steps(o, 100000), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_cfg_scale(o, 0.0 / 0.0), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_fusion(o, 7), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_pad_mode(o, 2), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_strengths(o, NULL, 2), TTPO_STATUS_NULL_POINTER);
    const double bad[1] = {1.5};
    CHECK_STATUS(ttpo_options_set_strengths(o, bad, 1), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_strengths(o, bad, 0), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_prompt(o, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_options_set_prompt(o, ""), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_metrics(o, "niqe,bogus"), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_refine_start(o, 2.0), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_max_batch(o, 0), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_memory_budget_mib(o, 10), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_options_set_memory_budget_mib(NULL, 1024), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_options_set_memory_budget_mib(o, 1024), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_tile_size(NULL, 0, 0), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_options_set_tile_size(o, 0, 0), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_options_set_t2(o, 900.0), TTPO_STATUS_OK); /* checked against T1 at job creation */

    /* Additions: per-option setters, strengths as text (core's parser), presets, getters. */
    {
        ttpo_options *p = ttpo_options_new();
        double got[8] = {0};
        size_t n = 99;
        uint32_t steps = 0;
        CHECK_STATUS(ttpo_options_set_strengths_str(p, " 0.2, 0.4 0.6,"), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_get_strengths(p, got, 8, &n), TTPO_STATUS_OK);
        CHECK(n == 3 && got[0] == 0.2 && got[1] == 0.4 && got[2] == 0.6);
        CHECK_STATUS(ttpo_options_set_strengths_str(p, "0.2,x"), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(ttpo_last_error(), "not a number") != NULL);
        CHECK_STATUS(ttpo_options_set_strengths_str(p, "0.2,1.5"), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(ttpo_last_error(), "strengths") != NULL);
        CHECK_STATUS(ttpo_options_set_strengths_str(p, ""), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ttpo_options_set_strengths_str(p, NULL), TTPO_STATUS_NULL_POINTER);
        n = 99;
        CHECK_STATUS(ttpo_options_get_strengths(p, got, 2, &n), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK(n == 99); /* a rejected value leaves the option, and outputs, as they were */
        CHECK_STATUS(ttpo_options_get_strengths(p, NULL, 8, &n), TTPO_STATUS_NULL_POINTER);
        CHECK_STATUS(ttpo_options_get_strengths(NULL, got, 8, &n), TTPO_STATUS_NULL_POINTER);
        CHECK_STATUS(ttpo_options_apply_preset(p, "FAST"), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_get_steps(p, &steps), TTPO_STATUS_OK);
        CHECK(steps == 10);
        CHECK_STATUS(ttpo_options_get_strengths(p, got, 8, &n), TTPO_STATUS_OK);
        CHECK(n == 2 && got[0] == 0.1 && got[1] == 0.3);
        CHECK_STATUS(ttpo_options_apply_preset(p, "paper"), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ttpo_options_apply_preset(p, NULL), TTPO_STATUS_NULL_POINTER);
        CHECK_STATUS(ttpo_options_apply_preset(NULL, "fast"), TTPO_STATUS_NULL_POINTER);
        CHECK_STATUS(ttpo_options_get_steps(NULL, &steps), TTPO_STATUS_NULL_POINTER);
        CHECK_STATUS(ttpo_options_get_steps(p, NULL), TTPO_STATUS_NULL_POINTER);
        CHECK(strcmp(ttpo_preset_name(0), "fast") == 0 && strcmp(ttpo_preset_label(2), "Best quality") == 0);
        CHECK(ttpo_preset_name(3) == NULL && ttpo_preset_label(UINT32_MAX) == NULL);
        /* The metric list: core's table, in its order; each name is a valid metrics option. */
        {
            const char *want[] = {"niqe", "piqe", "brisque", "clipiqa", "musiq", "maniqa", "topiq", "sharpness"};
            uint32_t count = ttpo_metric_count();
            CHECK(count == sizeof want / sizeof want[0]);
            for (uint32_t i = 0; i < count && i < sizeof want / sizeof want[0]; i++) {
                CHECK(ttpo_metric_name(i) != NULL && strcmp(ttpo_metric_name(i), want[i]) == 0);
                CHECK(ttpo_metric_description(i) != NULL && strlen(ttpo_metric_description(i)) > 10);
                CHECK(ttpo_metric_name(i) == ttpo_metric_name(i)); /* static */
                CHECK_STATUS(ttpo_options_set_metrics(p, ttpo_metric_name(i)), TTPO_STATUS_OK);
            }
            CHECK(strstr(ttpo_metric_description(0), "NIQE") != NULL);
            CHECK(strstr(ttpo_metric_description(count - 1), "higher is sharper") != NULL);
            CHECK(ttpo_metric_name(count) == NULL && ttpo_metric_description(count) == NULL);
            CHECK(ttpo_metric_name(UINT32_MAX) == NULL && ttpo_metric_description(UINT32_MAX) == NULL);
            /* Presets are accepted where names are; an unknown name is not. */
            CHECK_STATUS(ttpo_options_set_metrics(p, "reproduction"), TTPO_STATUS_OK);
            CHECK_STATUS(ttpo_options_set_metrics(p, "piqe,classical"), TTPO_STATUS_OK);
            CHECK_STATUS(ttpo_options_set_metrics(p, "reproduction,bogus"), TTPO_STATUS_INVALID_ARGUMENT);
            CHECK_STATUS(ttpo_options_set_metrics(p, ""), TTPO_STATUS_OK);
        }
        /* The restore list: core's table, in its order; each name is a valid restore option. */
        {
            const char *want[] = {"realesrgan-x4", "realesr-animevideov3-x2", "realesr-animevideov3-x4",
                                  "rdn-x2", "rdn-x3", "rdn-x4", "rdn-x8", "ffdnet", "ffdnet-gray"};
            const uint32_t scale[] = {4, 2, 4, 2, 3, 4, 8, 1, 1};
            uint32_t count = ttpo_restore_count();
            CHECK(count == sizeof want / sizeof want[0]);
            for (uint32_t i = 0; i < count && i < sizeof want / sizeof want[0]; i++) {
                CHECK(ttpo_restore_name(i) != NULL && strcmp(ttpo_restore_name(i), want[i]) == 0);
                CHECK(ttpo_restore_description(i) != NULL && strlen(ttpo_restore_description(i)) > 10);
                CHECK(ttpo_restore_name(i) == ttpo_restore_name(i)); /* static */
                CHECK(ttpo_restore_scale(i) == scale[i]);
                CHECK_STATUS(ttpo_options_set_restore(p, ttpo_restore_name(i)), TTPO_STATUS_OK);
            }
            CHECK(strstr(ttpo_restore_description(0), "Real-ESRGAN") != NULL);
            CHECK(ttpo_restore_name(count) == NULL && ttpo_restore_description(count) == NULL);
            CHECK(ttpo_restore_scale(count) == 0 && ttpo_restore_name(UINT32_MAX) == NULL);
            CHECK_STATUS(ttpo_options_set_restore(p, "no-such-net"), TTPO_STATUS_INVALID_ARGUMENT);
            CHECK_STATUS(ttpo_options_set_restore(p, NULL), TTPO_STATUS_OK);
        }
        CHECK_STATUS(ttpo_options_set_metric_max_pixels(p, 4095), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(ttpo_last_error(), "metric_max_pixels") != NULL);
        CHECK_STATUS(ttpo_options_set_metric_max_pixels(p, 4096), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_tile_overlap(p, 0.0), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ttpo_options_set_tile_overlap(p, 0.5), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_restore(p, "waifu2x"), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK(strstr(ttpo_last_error(), "rdn-x2") != NULL);
        CHECK_STATUS(ttpo_options_set_restore(p, "rdn-x2"), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_restore(p, ""), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_restore(p, NULL), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_restore_dir(p, "/nonexistent"), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_restore_dir(p, NULL), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_restore(NULL, "rdn-x2"), TTPO_STATUS_NULL_POINTER);
        CHECK_STATUS(ttpo_options_set_unet_tile(p, 256), TTPO_STATUS_OK);
        CHECK_STATUS(ttpo_options_set_vae_tile(NULL, 256), TTPO_STATUS_NULL_POINTER);
        CHECK_STATUS(ttpo_options_set_steps(p, 0), TTPO_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(ttpo_options_get_steps(p, &steps), TTPO_STATUS_OK);
        CHECK(steps == 10);
        ttpo_options_free(p);
    }

    ttpo_image in = crop_view();
    ttpo_job *job = (ttpo_job *)0x1;
    CHECK_STATUS(ttpo_job_new(NULL, o, &in, &job), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_new(engine, o, NULL, &job), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_new(engine, o, &in, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_new(engine, o, &in, &job), TTPO_STATUS_INVALID_ARGUMENT); /* T2 > T1 */
    CHECK(strstr(ttpo_engine_last_error(engine), "T2") != NULL);
    CHECK(job == (ttpo_job *)0x1);
    ttpo_options_free(o);

    ttpo_image x = in;
    x.data = NULL;
    CHECK_STATUS(ttpo_job_new(engine, NULL, &x, &job), TTPO_STATUS_NULL_POINTER);
    x = in; x.format = 3;
    CHECK_STATUS(ttpo_job_new(engine, NULL, &x, &job), TTPO_STATUS_INVALID_ARGUMENT);
    x = in; x.layout = 0xFFFFFFFFu;
    CHECK_STATUS(ttpo_job_new(engine, NULL, &x, &job), TTPO_STATUS_INVALID_ARGUMENT);
    x = in; x.width = 0;
    CHECK_STATUS(ttpo_job_new(engine, NULL, &x, &job), TTPO_STATUS_INVALID_IMAGE);
    x = in; x.width = 100000; x.height = 100000;
    CHECK_STATUS(ttpo_job_new(engine, NULL, &x, &job), TTPO_STATUS_INVALID_IMAGE);
    x = in; x.stride = 4 * CROP_W - 1;
    CHECK_STATUS(ttpo_job_new(engine, NULL, &x, &job), TTPO_STATUS_INVALID_ARGUMENT);
    float nan_px[3 * 4] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    nan_px[4] = 0.0f / 0.0f;
    ttpo_image nanv = {nan_px, 2, 2, 6 * sizeof(float), TTPO_FORMAT_F32, TTPO_LAYOUT_RGB};
    CHECK_STATUS(ttpo_job_new(engine, NULL, &nanv, &job), TTPO_STATUS_INVALID_IMAGE);
    CHECK(job == (ttpo_job *)0x1);

    /* Wrong order and bad indices on a real job. */
    o = fast_options();
    CHECK_STATUS(ttpo_job_new(engine, o, &in, &job), TTPO_STATUS_OK);
    ttpo_options_free(o);
    uint8_t out[4 * CROP_W * CROP_H];
    ttpo_image ov = {out, CROP_W, CROP_H, 4 * CROP_W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    memset(out, 0xAB, sizeof out);
    CHECK_STATUS(ttpo_job_refine(job, &ov), TTPO_STATUS_INVALID_STATE);
    CHECK(strstr(ttpo_job_last_error(job), "candidates") != NULL);
    CHECK(out[0] == 0xAB); /* outputs untouched on failure */
    uint32_t n = 5, p, d;
    CHECK_STATUS(ttpo_job_candidate_count(job, &n), TTPO_STATUS_OK);
    CHECK(n == 0);
    CHECK_STATUS(ttpo_job_candidate_count(job, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_candidate_image(job, 0, &ov), TTPO_STATUS_INVALID_STATE);
    CHECK_STATUS(ttpo_job_get_choice(job, &p, &d), TTPO_STATUS_INVALID_STATE);
    CHECK_STATUS(ttpo_job_choose(job, 1, 0), TTPO_STATUS_INVALID_STATE);
    CHECK_STATUS(ttpo_job_generate_candidates(NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_generate_candidates(job), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_candidate_image(job, 3, &ov), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_job_candidate_image(job, 0, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_candidate_metric(job, 0, 9, (double[1]){0}), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_job_choose(job, 1, 1), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_job_choose(job, 0, 77), TTPO_STATUS_INVALID_ARGUMENT);
    ttpo_image small = ov;
    small.width = CROP_W - 1;
    CHECK_STATUS(ttpo_job_refine(job, &small), TTPO_STATUS_INVALID_ARGUMENT);
    small = ov; small.stride = 3;
    CHECK_STATUS(ttpo_job_refine(job, &small), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_job_refine(job, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK(out[0] == 0xAB);
    CHECK_STATUS(ttpo_job_cancel(NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_set_progress_callback(NULL, NULL, NULL), TTPO_STATUS_NULL_POINTER);
    ttpo_job_free(job);
}

/* The contact sheet (core's ttpo::sheet, the one the CLI saves): before candidates and with
 * NULLs a status and nothing written; the natural size of 3 candidates; the chosen pair's
 * frame colours (and that they follow a new choice); the input's thumbnail shows the input;
 * a host-sized float RGBA frame; too small, too large and short-stride buffers refused. */
static const uint8_t *sheet_px(const uint8_t *rgb, uint32_t w, uint32_t x, uint32_t y) {
    return rgb + 3 * ((size_t)y * w + x);
}

static int is_rgb(const uint8_t *px, int r, int g, int b) {
    return px[0] == r && px[1] == g && px[2] == b;
}

static void check_frames(const uint8_t *rgb, uint32_t w, uint32_t p, uint32_t d) {
    for (uint32_t i = 0; i < 4; i++) {
        /* 2 x 2 grid: 8-px gaps, tiles 168 x 210; a pixel of each tile's top frame. */
        const uint8_t *f = sheet_px(rgb, w, 8 + (i % 2) * 176 + 84, 8 + (i / 2) * 218 + 1);
        if (i == 3) CHECK(is_rgb(f, 20, 20, 20)); /* no 4th candidate: background */
        else if (i == p) CHECK(is_rgb(f, 40, 200, 60));
        else if (i == d) CHECK(is_rgb(f, 230, 50, 40));
        else CHECK(is_rgb(f, 90, 90, 90));
    }
}

static void test_contact_sheet(ttpo_engine *engine) {
    ttpo_options *o = fast_options();
    ttpo_image in = crop_view();
    ttpo_job *job = NULL;
    CHECK_STATUS(ttpo_job_new(engine, o, &in, &job), TTPO_STATUS_OK);
    ttpo_options_free(o);
    uint32_t w = 7, h = 7, p = 0, d = 0;
    uint8_t probe[4 * 4 * 4];
    memset(probe, 0xAB, sizeof probe);
    ttpo_image pv = {probe, 4, 4, 16, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    CHECK_STATUS(ttpo_job_contact_sheet_size(job, &w, &h), TTPO_STATUS_INVALID_STATE);
    CHECK(strstr(ttpo_job_last_error(job), "candidates") != NULL);
    CHECK(w == 7 && h == 7);
    CHECK_STATUS(ttpo_job_contact_sheet(job, &pv), TTPO_STATUS_INVALID_STATE);
    CHECK(probe[0] == 0xAB);
    CHECK_STATUS(ttpo_job_contact_sheet_size(NULL, &w, &h), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_contact_sheet(NULL, &pv), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_contact_sheet(job, NULL), TTPO_STATUS_NULL_POINTER);

    CHECK_STATUS(ttpo_job_generate_candidates(job), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_contact_sheet_size(job, NULL, &h), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_job_contact_sheet_size(job, &w, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK(w == 7 && h == 7);
    CHECK_STATUS(ttpo_job_contact_sheet_size(job, &w, &h), TTPO_STATUS_OK);
    /* 3 candidates: 2 x 2 tiles of 160 + 2 * 4 by 160 + 42 (labels) + 2 * 4, 8-px gaps. */
    CHECK(w == 2 * 168 + 3 * 8 && h == 2 * 210 + 3 * 8);
    uint8_t *rgb = calloc((size_t)3 * w * h, 1);
    ttpo_image sv = {rgb, w, h, (intptr_t)(3 * w), TTPO_FORMAT_U8, TTPO_LAYOUT_RGB};
    CHECK_STATUS(ttpo_job_contact_sheet(job, &sv), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_get_choice(job, &p, &d), TTPO_STATUS_OK);
    CHECK(is_rgb(sheet_px(rgb, w, 0, 0), 20, 20, 20));
    check_frames(rgb, w, p, d);
    /* Tile 0 is the input (48 x 40) enlarged to 160 x 133 (nearest), centred in its box:
     * its mean equals the input's mean within rounding. */
    double sheet_sum = 0, in_sum = 0;
    for (uint32_t y = 0; y < 133; y++)
        for (uint32_t x = 0; x < 160; x++)
            sheet_sum += sheet_px(rgb, w, 8 + 4 + x, 8 + 4 + 13 + y)[1];
    for (uint32_t y = 0; y < CROP_H; y++)
        for (uint32_t x = 0; x < CROP_W; x++)
            in_sum += ((uint8_t *)in.data)[in.stride * (intptr_t)y + 4 * x + 1];
    double sheet_mean = sheet_sum / (133.0 * 160.0), in_mean = in_sum / (CROP_W * CROP_H);
    CHECK(sheet_mean > in_mean - 3.0 && sheet_mean < in_mean + 3.0);
    /* Label text (240, 240, 240) under tile 0. */
    int text = 0;
    for (uint32_t y = 8 + 4 + 160; y < 8 + 210 - 4; y++)
        for (uint32_t x = 8; x < 8 + 168; x++) text += is_rgb(sheet_px(rgb, w, x, y), 240, 240, 240);
    CHECK(text > 50);
    /* The marks follow the choice. */
    CHECK_STATUS(ttpo_job_choose(job, d, p), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_contact_sheet(job, &sv), TTPO_STATUS_OK);
    check_frames(rgb, w, d, p);

    /* A host's frame: 320 x 180 float RGBA, opaque, the grid fitted and centred. */
    enum { FW = 320, FH = 180 };
    float *f = malloc(sizeof(float) * 4 * FW * FH);
    for (size_t i = 0; i < 4 * FW * FH; i++) f[i] = -1.0f;
    ttpo_image fv = {f, FW, FH, (intptr_t)(sizeof(float) * 4 * FW), TTPO_FORMAT_F32, TTPO_LAYOUT_RGBA};
    CHECK_STATUS(ttpo_job_contact_sheet(job, &fv), TTPO_STATUS_OK);
    int opaque = 1, green = 0, red = 0;
    for (size_t i = 0; i < FW * FH; i++) {
        const float *q = f + 4 * i;
        if (q[3] != 1.0f) opaque = 0;
        green += q[0] == 40.0f / 255 && q[1] == 200.0f / 255 && q[2] == 60.0f / 255;
        red += q[0] == 230.0f / 255 && q[1] == 50.0f / 255 && q[2] == 40.0f / 255;
    }
    CHECK(opaque);
    CHECK(green > 100 && red > 100);
    CHECK(f[0] == 20.0f / 255);

    /* Too small for 3 thumbnails, larger than max_pixels, a short stride: nothing written. */
    CHECK_STATUS(ttpo_job_contact_sheet(job, &pv), TTPO_STATUS_INVALID_IMAGE);
    CHECK(strstr(ttpo_job_last_error(job), "cannot hold 3 candidates") != NULL);
    CHECK(probe[0] == 0xAB);
    ttpo_image big = pv;
    big.width = 100000; big.height = 100000;
    CHECK_STATUS(ttpo_job_contact_sheet(job, &big), TTPO_STATUS_INVALID_IMAGE);
    ttpo_image short_stride = sv;
    short_stride.stride = 3 * w - 1;
    CHECK_STATUS(ttpo_job_contact_sheet(job, &short_stride), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK(probe[0] == 0xAB);
    free(rgb); free(f);
    ttpo_job_free(job);
}

/* Cancel from another thread once progress reaches `at`; count progress after it. */
struct cancel_ctx {
    ttpo_job *job;
    uint32_t stage, at;
    int fired, after;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int requested, done;
};

static void *canceller(void *arg) {
    struct cancel_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->requested) pthread_cond_wait(&c->cv, &c->mu);
    ttpo_job_cancel(c->job);
    c->done = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void cancel_progress(void *user, uint32_t stage, uint32_t step, uint32_t total, double f) {
    struct cancel_ctx *c = user;
    (void)total; (void)f;
    if (c->fired) { c->after++; return; }
    if (stage == c->stage && step == c->at) {
        c->fired = 1;
        pthread_mutex_lock(&c->mu);
        c->requested = 1;
        pthread_cond_broadcast(&c->cv);
        while (!c->done) pthread_cond_wait(&c->cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
    }
}

static void test_cancel(ttpo_engine *engine, uint32_t stage) {
    ttpo_options *o = fast_options();
    ttpo_image in = crop_view();
    ttpo_job *job = NULL;
    CHECK_STATUS(ttpo_job_new(engine, o, &in, &job), TTPO_STATUS_OK);
    ttpo_options_free(o);
    if (stage == TTPO_STAGE_REFINE) CHECK_STATUS(ttpo_job_generate_candidates(job), TTPO_STATUS_OK);
    struct cancel_ctx c = {job, stage, 3, 0, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, canceller, &c);
    CHECK_STATUS(ttpo_job_set_progress_callback(job, cancel_progress, &c), TTPO_STATUS_OK);
    uint8_t out[4 * CROP_W * CROP_H];
    ttpo_image ov = {out, CROP_W, CROP_H, 4 * CROP_W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    CHECK_STATUS(ttpo_job_run(job, &ov), TTPO_STATUS_CANCELLED);
    pthread_join(t, NULL);
    CHECK(c.fired);
    CHECK(c.after == 0); /* stopped before the next model call */
    /* The job is usable again after a cancel. */
    CHECK_STATUS(ttpo_job_set_progress_callback(job, NULL, NULL), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_job_run(job, &ov), TTPO_STATUS_OK);
    ttpo_job_free(job);
}

/* Two engines, two threads, same inputs: results equal the serial run. */
struct run_ctx { uint8_t out[4 * CROP_W * CROP_H]; uint32_t status; };

static uint32_t run_once(uint8_t *out) {
    ttpo_engine *e = NULL;
    uint32_t st = ttpo_engine_new(model_dir, TTPO_DEVICE_CPU, 0, TTPO_PRECISION_F32, &e);
    if (st) return st;
    ttpo_options *o = fast_options();
    ttpo_image in = crop_view();
    ttpo_job *job = NULL;
    st = ttpo_job_new(e, o, &in, &job);
    ttpo_options_free(o);
    ttpo_engine_free(e); /* the job keeps the models alive */
    if (st) return st;
    ttpo_image ov = {out, CROP_W, CROP_H, 4 * CROP_W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    st = ttpo_job_run(job, &ov);
    ttpo_job_free(job);
    return st;
}

static void *run_thread(void *arg) {
    struct run_ctx *r = arg;
    r->status = run_once(r->out);
    return NULL;
}

static void test_two_engines_two_threads(void) {
    static struct run_ctx serial, a, b;
    CHECK_STATUS(run_once(serial.out), TTPO_STATUS_OK);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_thread, &a);
    pthread_create(&tb, NULL, run_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.status == TTPO_STATUS_OK && b.status == TTPO_STATUS_OK);
    CHECK(memcmp(serial.out, a.out, sizeof a.out) == 0);
    CHECK(memcmp(serial.out, b.out, sizeof b.out) == 0);
}

static int choice_calls;
static int32_t pick(void *user, const ttpo_job *job, uint32_t *preferred, uint32_t *dispreferred) {
    uint32_t n = 0;
    (void)user;
    choice_calls++;
    /* The job can be queried from inside the callback. */
    if (ttpo_job_candidate_count(job, &n) != TTPO_STATUS_OK || n < 3) return 1;
    *preferred = 2;
    *dispreferred = 0;
    return 0;
}

static void test_choice_callback(ttpo_engine *engine) {
    ttpo_options *o = fast_options();
    ttpo_image in = crop_view();
    ttpo_job *job = NULL;
    CHECK_STATUS(ttpo_job_new(engine, o, &in, &job), TTPO_STATUS_OK);
    ttpo_options_free(o);
    CHECK_STATUS(ttpo_job_set_choice_callback(job, pick, NULL), TTPO_STATUS_OK);
    uint8_t out[4 * CROP_W * CROP_H];
    ttpo_image ov = {out, CROP_W, CROP_H, 4 * CROP_W, TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    CHECK_STATUS(ttpo_job_run(job, &ov), TTPO_STATUS_OK);
    uint32_t p = 0, d = 0;
    CHECK_STATUS(ttpo_job_get_choice(job, &p, &d), TTPO_STATUS_OK);
    CHECK(choice_calls == 1 && p == 2 && d == 0);
    ttpo_job_free(job);
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s <tiny-model-dir> <photo.png> <expected-version>\n", argv[0]); return 2; }
#if defined(__SANITIZE_ADDRESS__)
    printf("sanitizers: address sanitizer compiled in\n");
#endif
    model_dir = argv[1];
    photo = png_read_rgba(argv[2], &photo_w, &photo_h);
    if (!photo) { fprintf(stderr, "cannot read %s\n", argv[2]); return 2; }
    test_version(argv[3]);
    ttpo_engine *engine = NULL;
    CHECK_STATUS(ttpo_engine_new(model_dir, TTPO_DEVICE_AUTO, 0, TTPO_PRECISION_AUTO, &engine), TTPO_STATUS_OK);
    if (!engine) return 1;
    test_happy_path(engine);
    test_misuse(engine);
    test_contact_sheet(engine);
    test_cancel(engine, TTPO_STAGE_CANDIDATES);
    test_cancel(engine, TTPO_STAGE_REFINE);
    test_choice_callback(engine);
    test_two_engines_two_threads();
    ttpo_engine_free(engine);
    free(photo);
    if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
    printf("C API tests: all checks passed\n");
    return 0;
}
