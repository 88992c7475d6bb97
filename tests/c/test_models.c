/*
 * Model resolution and download through the C API (ttpo_model_*), with no real network:
 * an explicit folder, a Hugging Face cache laid out by hand in a temp folder, offline mode,
 * NULL and bad arguments, small buffers, an unreachable endpoint, and downloads from a fake
 * Hub on 127.0.0.1 (models/examples/fake_hub.rs, started by tests/c/run.sh) with progress,
 * cancel (poll callback, from the progress callback, from another thread) and resume.
 *
 * usage: test_models <tiny-model-dir> <fake-hub-endpoint> <repo-id-it-serves>
 */
#define _GNU_SOURCE
#include "ttpo.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, ttpo_last_error()); failures++; } } while (0)
#define CHECK_STATUS(call, want) do { uint32_t st_ = (call); if (st_ != (uint32_t)(want)) { fprintf(stderr, "FAIL %s:%d: %s returned %u (%s), want %s (last error: %s)\n", __FILE__, __LINE__, #call, st_, ttpo_status_str(st_), #want, ttpo_last_error()); failures++; } } while (0)

static const char *tiny, *endpoint, *served;
static char tmp[4096];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* A fresh, empty Hugging Face cache: HF_HUB_CACHE=<tmp>/<name>. */
static void use_cache(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", tmp, name);
    mkdir(out, 0755);
    setenv("HF_HUB_CACHE", out, 1);
}

static void test_explicit_folder(void) {
    char buf[4096];
    size_t len = 0;
    CHECK_STATUS(ttpo_model_resolve(tiny, NULL, buf, sizeof buf, &len), TTPO_STATUS_OK);
    CHECK(strcmp(buf, tiny) == 0);
    CHECK(len == strlen(tiny));
    /* A folder that does not exist. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no-such-model", tmp);
    CHECK_STATUS(ttpo_model_resolve(missing, NULL, buf, sizeof buf, &len), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_last_error(), "does not exist") != NULL);
    /* NULL model: TTPO_MODEL_DIR when set. */
    setenv("TTPO_MODEL_DIR", tiny, 1);
    CHECK_STATUS(ttpo_model_resolve(NULL, NULL, buf, sizeof buf, &len), TTPO_STATUS_OK);
    CHECK(strcmp(buf, tiny) == 0);
    unsetenv("TTPO_MODEL_DIR");
}

/* models--org--name/{refs/main, snapshots/<commit>/...} as huggingface_hub writes it, the
 * snapshot's entries linked to the tiny model's. */
static void test_fake_cache(void) {
    const char *commit = "0123456789abcdef0123456789abcdef01234567";
    char cache[4200], snap[4400], p[4600], q[4600], buf[4096];
    size_t len = 0;
    use_cache("cache", cache, sizeof cache);
    snprintf(snap, sizeof snap, "%s/models--acme--tiny", cache);
    mkdir(snap, 0755);
    snprintf(p, sizeof p, "%s/snapshots", snap);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/refs", snap);
    mkdir(p, 0755);
    snprintf(snap + strlen(snap), sizeof snap - strlen(snap), "/snapshots/%s", commit);
    mkdir(snap, 0755);
    const char *parts[] = {"model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tiny, parts[i]);
        snprintf(q, sizeof q, "%s/%s", snap, parts[i]);
        CHECK(symlink(p, q) == 0);
    }
    /* No ref yet: by commit only. */
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", NULL, buf, sizeof buf, &len), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_last_error(), "is not in the Hugging Face cache") != NULL);
    CHECK(strstr(ttpo_last_error(), "ttpo_model_download") != NULL);
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", commit, buf, sizeof buf, &len), TTPO_STATUS_OK);
    CHECK(strcmp(buf, snap) == 0);
    snprintf(p, sizeof p, "%s/models--acme--tiny/refs/main", cache);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (f) { fputs(commit, f); fclose(f); }
    memset(buf, 0, sizeof buf);
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", NULL, buf, sizeof buf, &len), TTPO_STATUS_OK);
    CHECK(strcmp(buf, snap) == 0 && len == strlen(snap));
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", "main", buf, sizeof buf, &len), TTPO_STATUS_OK);
    /* Small buffers: the length is reported, nothing is written. */
    char small[64];
    memset(small, 'x', sizeof small);
    size_t need = 0;
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", NULL, NULL, 0, &need), TTPO_STATUS_OK);
    CHECK(need == strlen(snap));
    CHECK(need >= sizeof small);
    len = 0;
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", NULL, small, sizeof small, &len), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK(len == need);
    int untouched = 1;
    for (size_t i = 0; i < sizeof small; i++) untouched &= small[i] == 'x';
    CHECK(untouched);
    char *exact = malloc(need + 1); /* exactly enough (ASan catches one byte more) */
    len = 0;
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", NULL, exact, need, &len), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", NULL, exact, need + 1, NULL), TTPO_STATUS_OK);
    CHECK(strcmp(exact, snap) == 0);
    free(exact);
    /* An incomplete snapshot says what is missing. */
    snprintf(q, sizeof q, "%s/vae", snap);
    CHECK(unlink(q) == 0);
    CHECK_STATUS(ttpo_model_resolve("acme/tiny", NULL, buf, sizeof buf, &len), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_last_error(), "incomplete (missing vae/config.json") != NULL);
}

static void test_offline(void) {
    char cache[4200], buf[4096];
    size_t len = 7;
    use_cache("offline", cache, sizeof cache);
    setenv("HF_HUB_OFFLINE", "1", 1);
    setenv("HF_ENDPOINT", endpoint, 1);
    CHECK_STATUS(ttpo_model_resolve("nobody/nothing", NULL, buf, sizeof buf, &len), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(len == 7);
    CHECK(strstr(ttpo_last_error(), "HF_HUB_OFFLINE") != NULL);
    CHECK(strstr(ttpo_last_error(), "nobody/nothing") != NULL);
    ttpo_model_download *d = NULL;
    CHECK_STATUS(ttpo_model_download_new(served, NULL, &d), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_model_download_last_error(d), "offline mode is on") != NULL);
    ttpo_model_download_free(d);
    unsetenv("HF_HUB_OFFLINE");
}

static void test_bad_arguments(void) {
    char buf[64];
    size_t len = 0;
    ttpo_model_download *d = NULL;
    CHECK(strcmp(ttpo_model_default_repo(), "stabilityai/stable-diffusion-2-1-base") == 0);
    CHECK_STATUS(ttpo_model_resolve(tiny, NULL, NULL, 0, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_model_resolve(tiny, "\xff\xfe", buf, sizeof buf, &len), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_model_download_new(NULL, NULL, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_model_download_new("not a repo id!", NULL, &d), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_model_download_new("../../etc", NULL, &d), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_model_download_new("a/b/c", NULL, &d), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_model_download_new("\xff", NULL, &d), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK(d == NULL);
    CHECK_STATUS(ttpo_model_download_run(NULL, buf, sizeof buf, &len), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_model_download_cancel(NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_model_download_set_progress_callback(NULL, NULL, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK_STATUS(ttpo_model_download_set_cancel_callback(NULL, NULL, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK(ttpo_model_download_last_error(NULL) == NULL);
    ttpo_model_download_free(NULL);
    CHECK_STATUS(ttpo_model_download_new(NULL, "", &d), TTPO_STATUS_OK); /* the default repo */
    CHECK(d != NULL);
    CHECK_STATUS(ttpo_model_download_run(d, NULL, 0, NULL), TTPO_STATUS_NULL_POINTER);
    CHECK(strstr(ttpo_model_download_last_error(d), "NULL") != NULL);
    ttpo_model_download_free(d);
    CHECK(strcmp(ttpo_status_str(TTPO_STATUS_NETWORK), "network error") == 0);
}

static void test_unreachable(void) {
    char cache[4200], buf[4096];
    size_t len = 0;
    use_cache("unreachable", cache, sizeof cache);
    setenv("HF_ENDPOINT", "http://127.0.0.1:9", 1);
    ttpo_model_download *d = NULL;
    CHECK_STATUS(ttpo_model_download_new(NULL, NULL, &d), TTPO_STATUS_OK);
    double t0 = now();
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_NETWORK);
    CHECK(now() - t0 < 10.0);
    CHECK(strstr(ttpo_model_download_last_error(d), "127.0.0.1:9") != NULL);
    ttpo_model_download_free(d);
    setenv("HF_ENDPOINT", endpoint, 1);
}

/* ---- downloads from the fake Hub ---- */
struct watch {
    ttpo_model_download *d;
    int events, cancel_at_first_partial, reentrant_status, poll_result;
    char file[256];
    uint64_t last_done, first_done, done, total;
    volatile int started, finished;
};

static void on_progress(void *ud, const char *file, uint64_t file_done, uint64_t file_total,
                        uint64_t done, uint64_t total) {
    struct watch *w = ud;
    if (w->events == 0) {
        w->reentrant_status = (int)ttpo_model_download_set_progress_callback(w->d, NULL, NULL);
    }
    w->events++;
    CHECK(done <= total && file_done <= file_total && done >= w->done);
    w->done = done;
    w->total = total;
    if (w->file[0] == 0 && file_total > 100000) {
        /* The first big file: remember where it starts. */
        snprintf(w->file, sizeof w->file, "%s", file);
        w->first_done = file_done;
    }
    if (strcmp(w->file, file) == 0) w->last_done = file_done;
    /* Cancel once this run has written a chunk of the big file. */
    if (strcmp(w->file, file) == 0 && file_done > w->first_done && file_done < file_total) {
        w->started = 1;
        if (w->cancel_at_first_partial) ttpo_model_download_cancel(w->d);
    }
}

static int poll_cancel(void *ud) {
    struct watch *w = ud;
    return w->started ? w->poll_result : 0;
}

static void *cancel_later(void *arg) {
    struct watch *w = arg;
    while (!w->started && !w->finished) usleep(1000);
    CHECK_STATUS(ttpo_model_download_cancel(w->d), TTPO_STATUS_OK);
    return NULL;
}

static ttpo_model_download *watched(struct watch *w) {
    memset(w, 0, sizeof *w);
    CHECK_STATUS(ttpo_model_download_new(served, "main", &w->d), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_model_download_set_progress_callback(w->d, on_progress, w), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_model_download_set_cancel_callback(w->d, poll_cancel, w), TTPO_STATUS_OK);
    return w->d;
}

static void test_download(void) {
    char cache[4200], buf[4096], path[4096];
    size_t len = 0;
    struct watch w;
    use_cache("download", cache, sizeof cache);
    setenv("HF_ENDPOINT", endpoint, 1);

    /* 1. Cancelled from the progress callback, mid-file. */
    ttpo_model_download *d = watched(&w);
    w.cancel_at_first_partial = 1;
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_CANCELLED);
    CHECK(w.reentrant_status == TTPO_STATUS_INVALID_STATE); /* no changes while running */
    uint64_t kept = w.last_done;
    CHECK(kept > 0);
    /* A cancelled handle stays cancelled: no progress, at once. */
    int before = w.events;
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_CANCELLED);
    CHECK(w.events == before);
    ttpo_model_download_free(d);
    CHECK_STATUS(ttpo_model_resolve(served, NULL, buf, sizeof buf, &len), TTPO_STATUS_MODEL_NOT_FOUND);

    /* 2. A new handle resumes where it stopped; cancelled by the poll callback. */
    d = watched(&w);
    w.poll_result = 1;
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_CANCELLED);
    CHECK(w.first_done == kept);
    CHECK(w.last_done > kept); /* it wrote more before the poll stopped it */
    kept = w.last_done;
    ttpo_model_download_free(d);

    /* 3. Cancelled from another thread. */
    d = watched(&w);
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &w);
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_CANCELLED);
    w.finished = 1; /* (a failed run must not leave the thread waiting) */
    pthread_join(t, NULL);
    CHECK(w.first_done == kept);
    kept = w.last_done;
    ttpo_model_download_free(d);

    /* 4. To the end: the folder it reports is what resolve finds, complete. */
    d = watched(&w);
    memset(path, 0, sizeof path);
    CHECK_STATUS(ttpo_model_download_run(d, path, sizeof path, &len), TTPO_STATUS_OK);
    CHECK(len == strlen(path) && strstr(path, cache) == path);
    CHECK(w.first_done == kept && w.last_done > kept); /* resumed, then finished */
    CHECK(w.done == w.total && w.total > 5000000);
    ttpo_model_download_free(d);
    CHECK_STATUS(ttpo_model_resolve(served, NULL, buf, sizeof buf, &len), TTPO_STATUS_OK);
    CHECK(strcmp(buf, path) == 0);
    /* Again: nothing to fetch, no progress, the same folder. */
    d = watched(&w);
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_OK);
    CHECK(w.events == 0 && strcmp(buf, path) == 0);
    ttpo_model_download_free(d);
    /* The engine loads it. */
    ttpo_engine *e = NULL;
    CHECK_STATUS(ttpo_engine_new(path, TTPO_DEVICE_CPU, 0, 0, &e), TTPO_STATUS_OK);
    ttpo_engine_free(e);
    /* A repo the Hub does not have. */
    CHECK_STATUS(ttpo_model_download_new("nobody/nothing", NULL, &d), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_model_download_run(d, buf, sizeof buf, &len), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_model_download_last_error(d), "404") != NULL);
    ttpo_model_download_free(d);
}

/* ttpo_model_verify: a sound folder, the downloaded repo against the Hub's listing with
   hashes, a corrupt weight, a missing part, bad flags. Runs after test_download (its cache
   and endpoint). */
static void test_verify(void) {
    CHECK_STATUS(ttpo_model_verify(tiny, NULL, 0), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_model_verify(tiny, NULL, TTPO_MODEL_VERIFY_SHA256), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_model_verify(served, NULL, TTPO_MODEL_VERIFY_SHA256 | TTPO_MODEL_VERIFY_ONLINE), TTPO_STATUS_OK);
    CHECK_STATUS(ttpo_model_verify(tiny, NULL, 4), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_model_verify(tiny, NULL, TTPO_MODEL_VERIFY_ONLINE), TTPO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ttpo_model_verify("nobody/nothing", NULL, 0), TTPO_STATUS_MODEL_NOT_FOUND);

    char copy[4200], cmd[9000], unet[4300];
    snprintf(copy, sizeof copy, "%s/verify-copy", tmp);
    snprintf(cmd, sizeof cmd, "cp -rL '%s' '%s'", tiny, copy);
    CHECK(system(cmd) == 0);
    CHECK_STATUS(ttpo_model_verify(copy, NULL, 0), TTPO_STATUS_OK);
    /* A weight file cut short: invalid, and the message names it. */
    snprintf(unet, sizeof unet, "%s/unet/diffusion_pytorch_model.safetensors", copy);
    CHECK(truncate(unet, 1000) == 0);
    CHECK_STATUS(ttpo_model_verify(copy, NULL, 0), TTPO_STATUS_MODEL_INVALID);
    CHECK(strstr(ttpo_last_error(), "unet/diffusion_pytorch_model.safetensors") != NULL);
    /* Only a part missing: not found, and the message says which. */
    snprintf(cmd, sizeof cmd, "rm -f '%s' && rm -rf '%s/vae'", unet, copy);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "cp -L '%s/unet/diffusion_pytorch_model.safetensors' '%s'", tiny, unet);
    CHECK(system(cmd) == 0);
    CHECK_STATUS(ttpo_model_verify(copy, NULL, 0), TTPO_STATUS_MODEL_NOT_FOUND);
    CHECK(strstr(ttpo_last_error(), "vae") != NULL && strstr(ttpo_last_error(), "missing") != NULL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_models <tiny-model-dir> <fake-hub-endpoint> <repo-id>\n");
        return 2;
    }
    tiny = argv[1];
    endpoint = argv[2];
    served = argv[3];
    snprintf(tmp, sizeof tmp, "%s/ttpo-models-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 2; }
    unsetenv("TTPO_MODEL_DIR");
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("HF_TOKEN");
    test_explicit_folder();
    test_fake_cache();
    test_offline();
    test_bad_arguments();
    test_unreachable();
    test_download();
    test_verify();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_models: all checks passed\n");
    return 0;
}
