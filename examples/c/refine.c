/*
 * Refines a PNG with libttpo: load a model folder, run the whole job, print progress,
 * honour Ctrl-C through the job's cancel call.
 *
 *   refine <model-dir> <in.png> <out.png> [--steps N] [--seed N]
 *
 * The SIGINT handler only sets a flag (that is all a signal handler may safely do); the
 * cancel poll callback, called before every model call, turns it into a cancel.
 */
#define _POSIX_C_SOURCE 200809L
#include "ttpo.h"
#include "png_io.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }
static int32_t poll_cancel(void *user) { (void)user; return interrupted; }

static void on_progress(void *user, uint32_t stage, uint32_t step, uint32_t total, double fraction) {
    static const char *names[] = {"", "candidates", "scoring", "refine"};
    (void)user;
    fprintf(stderr, "\r%-10s %3u/%-3u %5.1f%%", stage <= 3 ? names[stage] : "?", step, total, 100.0 * fraction);
    if (step == total) fputc('\n', stderr);
}

static int fail(const char *what, uint32_t status) {
    fprintf(stderr, "\nerror: %s: %s (%s)\n", what, ttpo_status_str(status), ttpo_last_error());
    return status == TTPO_STATUS_CANCELLED ? 130 : 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s <model-dir> <in.png> <out.png> [--steps N] [--seed N]\n", argv[0]);
        return 2;
    }
    ttpo_options *opts = ttpo_options_new();
    for (int i = 4; i + 1 < argc; i += 2) {
        uint32_t st = TTPO_STATUS_INVALID_ARGUMENT;
        if (strcmp(argv[i], "--steps") == 0) {
            st = ttpo_options_set_steps(opts, (uint32_t)atoi(argv[i + 1]));
            if (st == TTPO_STATUS_OK) st = ttpo_options_set_refine_steps(opts, (uint32_t)atoi(argv[i + 1]));
        } else if (strcmp(argv[i], "--seed") == 0) {
            st = ttpo_options_set_seed(opts, strtoull(argv[i + 1], NULL, 10));
        }
        if (st != TTPO_STATUS_OK) return fail(argv[i], st);
    }
    uint32_t w, h;
    uint8_t *pixels = png_read_rgba(argv[2], &w, &h);
    if (!pixels) { fprintf(stderr, "error: cannot read %s\n", argv[2]); return 1; }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    ttpo_engine *engine = NULL;
    uint32_t st = ttpo_engine_new(argv[1], TTPO_DEVICE_AUTO, 0, TTPO_PRECISION_AUTO, &engine);
    if (st != TTPO_STATUS_OK) return fail("loading the model", st);
    ttpo_image in = {pixels, w, h, (intptr_t)(4 * w), TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    ttpo_job *job = NULL;
    st = ttpo_job_new(engine, opts, &in, &job);
    ttpo_options_free(opts);
    if (st != TTPO_STATUS_OK) return fail("creating the job", st);
    ttpo_job_set_progress_callback(job, on_progress, NULL);
    ttpo_job_set_cancel_callback(job, poll_cancel, NULL);
    uint8_t *out = malloc((size_t)4 * w * h);
    ttpo_image ov = {out, w, h, (intptr_t)(4 * w), TTPO_FORMAT_U8, TTPO_LAYOUT_RGBA};
    st = ttpo_job_run(job, &ov);
    int rc = 0;
    if (st != TTPO_STATUS_OK) {
        rc = fail("refining", st);
    } else if (png_write_rgba(argv[3], out, w, h) != 0) {
        fprintf(stderr, "error: cannot write %s\n", argv[3]);
        rc = 1;
    } else {
        uint32_t p = 0, d = 0;
        ttpo_job_get_choice(job, &p, &d);
        fprintf(stderr, "wrote %s (preferred candidate %u, dispreferred %u)\n", argv[3], p, d);
    }
    ttpo_job_free(job);
    ttpo_engine_free(engine);
    free(out);
    free(pixels);
    return rc;
}
