/* Host-independent part of the TTPO GIMP plug-ins: see ttpo-common.h. */
#include "ttpo-common.h"
#include <math.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

/* The engine's presets (one list for every surface), then Custom. */
int ttpo_n_presets(void) {
    int n = 0;
    while (ttpo_preset_name((uint32_t)n)) n++;
    return n + 1;
}

const char *ttpo_preset_menu_label(int index) {
    const char *label = index >= 0 ? ttpo_preset_label((uint32_t)index) : NULL;
    return label ? label : "Custom";
}

int ttpo_restore_menu_count(void) { return (int)ttpo_restore_count() + 1; }

const char *ttpo_restore_menu_label(int index) {
    const char *name = index > 0 ? ttpo_restore_name((uint32_t)(index - 1)) : NULL;
    return name ? name : "None";
}

int ttpo_restore_menu_index(const char *name) {
    for (uint32_t i = 0; name && *name && i < ttpo_restore_count(); i++)
        if (strcmp(ttpo_restore_name(i), name) == 0) return (int)i + 1;
    return 0;
}

gboolean ttpo_check_restore(const char *name, char **error) {
    if (!name || !*name || ttpo_restore_menu_index(name) > 0) return TRUE;
    GString *known = g_string_new(NULL);
    for (uint32_t i = 0; i < ttpo_restore_count(); i++)
        g_string_append_printf(known, "%s%s", i ? ", " : "", ttpo_restore_name(i));
    *error = g_strdup_printf("Unknown restoration network \"%s\" (known: %s; empty: none)", name, known->str);
    g_string_free(known, TRUE);
    return FALSE;
}

static const char *const JUDGE_LABELS[] = {"Default metrics (NIQE, PIQE)", "Learned metrics (MUSIQ, MANIQA, TOPIQ-NR)"};
static const char *const JUDGE_METRICS[] = {"", "reproduction"};

int ttpo_judge_menu_count(void) { return (int)G_N_ELEMENTS(JUDGE_LABELS); }

const char *ttpo_judge_menu_label(int index) {
    return JUDGE_LABELS[CLAMP(index, 0, ttpo_judge_menu_count() - 1)];
}

const char *ttpo_judge_menu_metrics(int index) {
    return JUDGE_METRICS[CLAMP(index, 0, ttpo_judge_menu_count() - 1)];
}

int ttpo_judge_menu_index(const char *metrics) {
    for (int i = 0; metrics && i < ttpo_judge_menu_count(); i++)
        if (strcmp(JUDGE_METRICS[i], metrics) == 0) return i;
    return 0;
}

gboolean ttpo_check_metrics(const char *metrics, char **error) {
    if (!metrics || !*metrics) return TRUE;
    ttpo_options *o = ttpo_options_new();
    uint32_t st = ttpo_options_set_metrics(o, metrics);
    if (st != TTPO_STATUS_OK) *error = g_strdup(ttpo_last_error());
    ttpo_options_free(o);
    return st == TTPO_STATUS_OK;
}

void ttpo_params_defaults(TtpoParams *p) {
    memset(p, 0, sizeof *p);
    p->seed = 0;
    p->selection = 0;
    p->preferred = 1;
    p->dispreferred = 0;
    p->device = 0;
    ttpo_params_apply_preset(p, 1);
}

void ttpo_params_apply_preset(TtpoParams *p, int index) {
    int n = ttpo_n_presets();
    if (index < 0 || index >= n) index = n - 1;
    p->preset = index;
    if (index == n - 1) return; /* Custom */
    /* Read the preset's values back from an options object it was applied to. */
    ttpo_options *o = ttpo_options_new();
    double s[64];
    size_t count = 0;
    uint32_t steps = 0;
    if (o && ttpo_options_apply_preset(o, ttpo_preset_name((uint32_t)index)) == TTPO_STATUS_OK &&
        ttpo_options_get_steps(o, &steps) == TTPO_STATUS_OK &&
        ttpo_options_get_strengths(o, s, G_N_ELEMENTS(s), &count) == TTPO_STATUS_OK) {
        GString *text = g_string_new(NULL);
        for (size_t i = 0; i < count; i++) {
            char num[G_ASCII_DTOSTR_BUF_SIZE];
            g_string_append_printf(text, "%s%s", i ? "," : "", g_ascii_formatd(num, sizeof num, "%g", s[i]));
        }
        p->steps = (gint32)steps;
        g_strlcpy(p->strengths, text->str, sizeof p->strengths);
        g_string_free(text, TRUE);
    }
    ttpo_options_free(o);
}

gboolean ttpo_check_strengths(const char *text, char **error) {
    ttpo_options *o = ttpo_options_new();
    if (!o) {
        *error = g_strdup("out of memory");
        return FALSE;
    }
    uint32_t st = ttpo_options_set_strengths_str(o, text ? text : "");
    if (st != TTPO_STATUS_OK)
        *error = g_strdup_printf("Invalid strengths \"%s\": %s (expected numbers in 0..1, e.g. \"0.1,0.2,0.3\")",
                                 text ? text : "", ttpo_last_error());
    ttpo_options_free(o);
    return st == TTPO_STATUS_OK;
}

guchar *ttpo_thumbnail(const float *rgba, guint w, guint h, int max_side, int *tw, int *th) {
    double scale = (double)max_side / (double)MAX(w, h);
    if (scale > 1.0) scale = 1.0;
    int ow = MAX(1, (int)lround(w * scale)), oh = MAX(1, (int)lround(h * scale));
    guchar *out = g_malloc((size_t)ow * oh * 3);
    for (int y = 0; y < oh; y++) {
        guint y0 = (guint)((double)y * h / oh), y1 = MAX(y0 + 1, (guint)((double)(y + 1) * h / oh));
        for (int x = 0; x < ow; x++) {
            guint x0 = (guint)((double)x * w / ow), x1 = MAX(x0 + 1, (guint)((double)(x + 1) * w / ow));
            double acc[3] = {0, 0, 0};
            double bg = (((x / 8) + (y / 8)) & 1) ? 0.6 : 0.4;
            guint n = 0;
            for (guint yy = y0; yy < y1 && yy < h; yy++)
                for (guint xx = x0; xx < x1 && xx < w; xx++) {
                    const float *px = rgba + 4 * ((size_t)yy * w + xx);
                    double a = CLAMP(px[3], 0.0f, 1.0f);
                    for (int c = 0; c < 3; c++) acc[c] += CLAMP(px[c], 0.0f, 1.0f) * a + bg * (1.0 - a);
                    n++;
                }
            for (int c = 0; c < 3; c++)
                out[3 * ((size_t)y * ow + x) + c] = (guchar)lround(255.0 * acc[c] / MAX(n, 1u));
        }
    }
    *tw = ow;
    *th = oh;
    return out;
}

struct TtpoTask {
    TtpoParams params;
    guint w, h;   /* the input */
    guint ow, oh; /* the job's output (w x h times the restore scale) */
    float *input;
    float *output;
    ttpo_engine *engine;
    ttpo_job *job;
    GThread *thread;
    TtpoPhase phase;
    guint preferred, dispreferred;

    GMutex lock; /* guards the fields below */
    gboolean running;
    gboolean cancelled;
    guint stage, step, total;
    double overall; /* the engine's overall fraction at the latest event */
    gboolean estimating;
    double estimate; /* seconds the whole job takes (ttpo_job_estimate); < 0 while unknown */
    uint32_t status;
    gchar *message;
};

TtpoTask *ttpo_task_new(const TtpoParams *p, const float *rgba, guint w, guint h) {
    TtpoTask *t = g_new0(TtpoTask, 1);
    t->params = *p;
    t->w = t->ow = w;
    t->h = t->oh = h;
    t->input = g_memdup2(rgba, (gsize)w * h * 4 * sizeof(float));
    t->estimate = -1.0;
    g_mutex_init(&t->lock);
    return t;
}

static void task_join(TtpoTask *t) {
    if (t->thread) {
        g_thread_join(t->thread);
        t->thread = NULL;
    }
}

void ttpo_task_free(TtpoTask *t) {
    if (!t) return;
    ttpo_task_cancel(t);
    task_join(t);
    ttpo_job_free(t->job);
    ttpo_engine_free(t->engine);
    g_free(t->input);
    g_free(t->output);
    g_free(t->message);
    g_mutex_clear(&t->lock);
    g_free(t);
}

static void on_progress(void *user, uint32_t stage, uint32_t step, uint32_t total, double fraction) {
    TtpoTask *t = user;
    double overall = 0.0;
    (void)fraction; /* within the stage; the bar shows the engine's overall fraction */
    ttpo_job_progress_overall(t->job, &overall);
    g_mutex_lock(&t->lock);
    t->stage = stage;
    t->step = step;
    t->total = total;
    t->overall = overall;
    g_mutex_unlock(&t->lock);
}

static int32_t on_cancel(void *user) {
    TtpoTask *t = user;
    g_mutex_lock(&t->lock);
    int32_t c = t->cancelled;
    g_mutex_unlock(&t->lock);
    return c;
}

/* A sentence for people from a status and the engine's detail. */
static gchar *describe(const char *what, uint32_t st, const char *detail) {
    if (st == TTPO_STATUS_CANCELLED) return g_strdup("TTPO was cancelled.");
    if (!detail || !*detail) detail = ttpo_status_str(st);
    if (st == TTPO_STATUS_INVALID_IMAGE && strstr(detail, "pixels"))
        return g_strdup_printf("TTPO cannot process this image at once: %s. Select a smaller area or scale "
                               "the image down first; nothing was changed.", detail);
    /* Past the model's loading, a missing file is another one the job needs (e.g. a
       restoration network's): the engine's message names it and where to get it. */
    if (st == TTPO_STATUS_MODEL_NOT_FOUND && strcmp(what, "loading the model") != 0)
        return g_strdup_printf("TTPO is missing a file it needs: %s", detail);
    if (st == TTPO_STATUS_MODEL_NOT_FOUND)
        return g_strdup_printf("TTPO model folder not found: %s (set the model folder, or TTPO_MODEL_DIR).", detail);
    return g_strdup_printf("TTPO failed while %s: %s (%s)", what, detail, ttpo_status_str(st));
}

static void finish(TtpoTask *t, const char *what, uint32_t st, const char *detail) {
    gchar *msg = st == TTPO_STATUS_OK ? NULL : describe(what, st, detail);
    g_mutex_lock(&t->lock);
    t->status = st;
    g_free(t->message);
    t->message = msg;
    t->running = FALSE;
    g_mutex_unlock(&t->lock);
}

char *ttpo_format_duration(double seconds, char *buf, size_t n) {
    if (!isfinite(seconds) || seconds < 0.0) {
        g_strlcpy(buf, "unknown", n);
        return buf;
    }
    guint64 s = (guint64)llround(seconds);
    if (s < 60)
        g_snprintf(buf, n, "%" G_GUINT64_FORMAT " s", s);
    else if (s < 3600)
        g_snprintf(buf, n, "%" G_GUINT64_FORMAT " min %02" G_GUINT64_FORMAT " s", s / 60, s % 60);
    else
        g_snprintf(buf, n, "%" G_GUINT64_FORMAT " h %02" G_GUINT64_FORMAT " min", s / 3600, (s % 3600) / 60);
    return buf;
}

/* What the job will take, before it starts: a few probe calls the first time an engine
   meets a tile shape (seconds on a CPU), then counting. The progress text shows it; stderr
   gets it once (GIMP's terminal or a batch run's log). It blocks like a stage and sees no
   cancel, so a Cancel pressed meanwhile acts right after it. A failure only loses the
   estimate: the job runs without it. */
static void task_estimate(TtpoTask *t) {
    g_mutex_lock(&t->lock);
    t->estimating = TRUE;
    g_mutex_unlock(&t->lock);
    double total = -1.0, stage[3] = {0.0, 0.0, 0.0};
    uint32_t st = ttpo_job_estimate(t->job, &total, stage);
    if (st == TTPO_STATUS_OK) {
        char a[32], b[32], c[32], d[32];
        g_printerr("TTPO: this job takes about %s in all (Stage I %s, Stage II %s, Stage III %s)\n",
                   ttpo_format_duration(total, a, sizeof a), ttpo_format_duration(stage[0], b, sizeof b),
                   ttpo_format_duration(stage[1], c, sizeof c), ttpo_format_duration(stage[2], d, sizeof d));
    } else {
        g_printerr("TTPO: no time estimate (%s): %s\n", ttpo_status_str(st), ttpo_job_last_error(t->job));
        total = -1.0;
    }
    g_mutex_lock(&t->lock);
    t->estimating = FALSE;
    t->estimate = total;
    g_mutex_unlock(&t->lock);
}

static gpointer worker(gpointer data) {
    TtpoTask *t = data;
    uint32_t st;
    if (t->phase != TTPO_PHASE_REFINE && !t->job) {
        char *err = NULL;
        if (!ttpo_check_strengths(t->params.strengths, &err) || !ttpo_check_restore(t->params.restore, &err) ||
            !ttpo_check_metrics(t->params.metrics, &err)) {
            finish(t, "reading the options", TTPO_STATUS_INVALID_ARGUMENT, err);
            g_free(err);
            return NULL;
        }
        if (!t->engine) {
            static const uint32_t devices[] = {TTPO_DEVICE_AUTO, TTPO_DEVICE_CPU, TTPO_DEVICE_CUDA, TTPO_DEVICE_METAL};
            uint32_t dev = devices[CLAMP(t->params.device, 0, 3)];
            st = ttpo_engine_new(t->params.model_dir, dev, 0, TTPO_PRECISION_AUTO, &t->engine);
            if (st != TTPO_STATUS_OK) {
                finish(t, "loading the model", st, ttpo_last_error());
                return NULL;
            }
        }
        if (on_cancel(t)) {
            finish(t, "", TTPO_STATUS_CANCELLED, NULL);
            return NULL;
        }
        ttpo_options *o = ttpo_options_new();
        st = ttpo_options_set_seed(o, (uint64_t)(guint32)t->params.seed);
        if (!st) st = ttpo_options_set_steps(o, (uint32_t)t->params.steps);
        if (!st) st = ttpo_options_set_refine_steps(o, (uint32_t)t->params.steps);
        if (!st) st = ttpo_options_set_strengths_str(o, t->params.strengths);
        /* The restore folder is the engine's default; a missing network file fails
           ttpo_job_new below with the engine's message (which package holds it). */
        if (!st && t->params.restore[0]) st = ttpo_options_set_restore(o, t->params.restore);
        /* Learned metrics whose checkpoint is missing fail ttpo_job_new below with the
           engine's message (the file, the repo and the folders searched). */
        if (!st && t->params.metrics[0]) st = ttpo_options_set_metrics(o, t->params.metrics);
        /* Optional cap on the accepted image size (pixels), e.g. to keep memory use low on
         * a small machine; the engine's default accepts 64 Mi pixels and works in tiles. */
        const char *max_px = g_getenv("TTPO_MAX_PIXELS");
        if (!st && max_px && *max_px)
            st = ttpo_options_set_max_pixels(o, g_ascii_strtoull(max_px, NULL, 10));
        if (st != TTPO_STATUS_OK) {
            gchar *d = g_strdup(ttpo_last_error());
            ttpo_options_free(o);
            finish(t, "reading the options", st, d);
            g_free(d);
            return NULL;
        }
        ttpo_image in = {t->input, t->w, t->h, (ptrdiff_t)t->w * 4 * sizeof(float), TTPO_FORMAT_F32, TTPO_LAYOUT_RGBA};
        ttpo_job *job = NULL;
        st = ttpo_job_new(t->engine, o, &in, &job);
        ttpo_options_free(o);
        g_atomic_pointer_set(&t->job, job); /* read by ttpo_task_cancel on the UI thread */
        if (st != TTPO_STATUS_OK) {
            finish(t, "preparing the job", st, ttpo_last_error());
            return NULL;
        }
        guint32 ow = t->w, oh = t->h;
        ttpo_job_size(t->job, &ow, &oh); /* the restored size with a restore network */
        g_mutex_lock(&t->lock);
        t->ow = ow;
        t->oh = oh;
        g_mutex_unlock(&t->lock);
        ttpo_job_set_progress_callback(t->job, on_progress, t);
        ttpo_job_set_cancel_callback(t->job, on_cancel, t);
        task_estimate(t);
        if (on_cancel(t)) {
            finish(t, "", TTPO_STATUS_CANCELLED, NULL);
            return NULL;
        }
        st = ttpo_job_generate_candidates(t->job);
        if (st != TTPO_STATUS_OK) {
            finish(t, "making candidates", st, ttpo_job_last_error(t->job));
            return NULL;
        }
    }
    if (t->phase == TTPO_PHASE_GENERATE) {
        finish(t, "", TTPO_STATUS_OK, NULL);
        return NULL;
    }
    if (t->phase == TTPO_PHASE_REFINE || t->params.selection == 1) {
        guint p = t->phase == TTPO_PHASE_REFINE ? t->preferred : (guint)t->params.preferred;
        guint d = t->phase == TTPO_PHASE_REFINE ? t->dispreferred : (guint)t->params.dispreferred;
        st = ttpo_job_choose(t->job, p, d);
        if (st != TTPO_STATUS_OK) {
            finish(t, "choosing candidates", st, ttpo_job_last_error(t->job));
            return NULL;
        }
    } else {
        ttpo_job_choose_auto(t->job);
    }
    float *out = g_malloc((gsize)t->ow * t->oh * 4 * sizeof(float));
    ttpo_image ov = {out, t->ow, t->oh, (ptrdiff_t)t->ow * 4 * sizeof(float), TTPO_FORMAT_F32, TTPO_LAYOUT_RGBA};
    st = ttpo_job_refine(t->job, &ov);
    if (st != TTPO_STATUS_OK) {
        g_free(out);
        finish(t, "refining", st, ttpo_job_last_error(t->job));
        return NULL;
    }
    g_free(t->output);
    t->output = out;
    finish(t, "", TTPO_STATUS_OK, NULL);
    return NULL;
}

void ttpo_task_start(TtpoTask *t, TtpoPhase phase, guint preferred, guint dispreferred) {
    task_join(t);
    g_mutex_lock(&t->lock);
    t->running = TRUE;
    t->cancelled = FALSE;
    t->stage = 0;
    t->step = t->total = 0;
    /* t->overall stays: a REFINE phase goes on from where GENERATE left the job, and the
       time left is counted from there. */
    t->status = TTPO_STATUS_OK;
    g_mutex_unlock(&t->lock);
    t->phase = phase;
    t->preferred = preferred;
    t->dispreferred = dispreferred;
    t->thread = g_thread_new("ttpo-worker", worker, t);
}

gboolean ttpo_task_running(TtpoTask *t) {
    g_mutex_lock(&t->lock);
    gboolean r = t->running;
    g_mutex_unlock(&t->lock);
    return r;
}

void ttpo_task_wait(TtpoTask *t, void (*hook)(double, const char *, void *), void *user) {
    char text[128];
    while (ttpo_task_running(t)) {
        double f = ttpo_task_progress(t, text, sizeof text);
        if (hook) hook(f, text, user);
        g_usleep(100000);
    }
    task_join(t);
}

gboolean ttpo_task_time_left(TtpoTask *t, double *seconds) {
    g_mutex_lock(&t->lock);
    double estimate = t->estimate, overall = CLAMP(t->overall, 0.0, 1.0);
    g_mutex_unlock(&t->lock);
    /* The engine's overall fraction weighs the stages by model calls, which is what the
       estimate counts, so the share still to run times the estimate is the time left. */
    *seconds = estimate * (1.0 - overall);
    return estimate >= 0.0;
}

double ttpo_task_progress(TtpoTask *t, char *text, size_t n) {
    g_mutex_lock(&t->lock);
    guint stage = t->stage, step = t->step, total = t->total;
    double overall = t->overall;
    gboolean estimating = t->estimating;
    g_mutex_unlock(&t->lock);
    /* The engine's one weighting of the stages (ttpo_job_progress_overall). */
    static const char *names[] = {"Loading the model", "Stage I: candidates", "Stage II: scoring",
                                  "Stage III: refining"};
    if (stage > 3) stage = 0;
    if (text) {
        double seconds;
        char left[64] = "", d[32];
        gboolean known = ttpo_task_time_left(t, &seconds);
        if (known) g_snprintf(left, sizeof left, " — about %s left", ttpo_format_duration(seconds, d, sizeof d));
        if (stage == 0 && !g_atomic_pointer_get(&t->job))
            g_strlcpy(text, names[0], n);
        else if (stage == 0 && estimating)
            g_strlcpy(text, "Estimating the time", n);
        else if (stage == 0 && known && overall <= 0.0)
            g_snprintf(text, n, "%s (about %s in all)", names[1], d); /* d: all of it, nothing ran yet */
        else if (stage == 0)
            g_snprintf(text, n, "Starting%s", left);
        else
            g_snprintf(text, n, "%s %u/%u%s", names[stage], step, total, left);
    }
    return stage == 0 ? 0.0 : CLAMP(overall, 0.0, 1.0);
}

void ttpo_task_cancel(TtpoTask *t) {
    g_mutex_lock(&t->lock);
    t->cancelled = TRUE;
    g_mutex_unlock(&t->lock);
    /* The job pointer is set by the worker before any long call; a cancel that arrives
       before it exists is seen by the cancel poll. */
    ttpo_job *job = g_atomic_pointer_get(&t->job);
    if (job) ttpo_job_cancel(job);
}

uint32_t ttpo_task_status(TtpoTask *t) {
    g_mutex_lock(&t->lock);
    uint32_t s = t->status;
    g_mutex_unlock(&t->lock);
    return s;
}

const char *ttpo_task_message(TtpoTask *t) { return t->message ? t->message : ""; }
ttpo_job *ttpo_task_job(TtpoTask *t) { return t->job; }
const float *ttpo_task_output(TtpoTask *t) { return t->output; }

void ttpo_task_output_size(TtpoTask *t, guint *w, guint *h) {
    g_mutex_lock(&t->lock);
    *w = t->ow;
    *h = t->oh;
    g_mutex_unlock(&t->lock);
}

guchar *ttpo_task_candidate_thumb(TtpoTask *t, guint index, int max_side, int *tw, int *th) {
    guint w, h;
    ttpo_task_output_size(t, &w, &h); /* candidates are at the restored size */
    float *buf = g_malloc((gsize)w * h * 4 * sizeof(float));
    ttpo_image ov = {buf, w, h, (ptrdiff_t)w * 4 * sizeof(float), TTPO_FORMAT_F32, TTPO_LAYOUT_RGBA};
    guchar *thumb = NULL;
    if (ttpo_job_candidate_image(t->job, index, &ov) == TTPO_STATUS_OK)
        thumb = ttpo_thumbnail(buf, w, h, max_side, tw, th);
    g_free(buf);
    return thumb;
}

/* ---- Models: found like the CLI finds them, downloaded only when a person says so ---- */

/* The repo a download of `model` would fetch, or NULL when `model` names a folder (or ""
   names $TTPO_MODEL_DIR). Whether a string is a repo id is the library's call: it refuses a
   download handle for anything else (nothing is contacted by _new). */
static gchar *download_repo(const char *model) {
    if (!model || !*model) {
        const char *env = g_getenv("TTPO_MODEL_DIR");
        return env && *env ? NULL : g_strdup(ttpo_model_default_repo());
    }
    ttpo_model_download *d = NULL;
    if (ttpo_model_download_new(model, NULL, &d) != TTPO_STATUS_OK) return NULL;
    ttpo_model_download_free(d);
    return g_strdup(model);
}

uint32_t ttpo_model_find(const char *model, gchar **path, gchar **repo, gchar **message) {
    *path = *repo = *message = NULL;
    char buf[4096];
    size_t len = 0;
    uint32_t st = ttpo_model_resolve(model, NULL, buf, sizeof buf, &len);
    if (st == TTPO_STATUS_OK) {
        *path = g_strdup(buf);
        return st;
    }
    gchar *detail = g_strdup(ttpo_last_error()); /* before download_repo's calls replace it */
    *repo = st == TTPO_STATUS_MODEL_NOT_FOUND ? download_repo(model) : NULL;
    if (*repo)
        *message = g_strdup_printf("TTPO model not on this computer: %s. Run TTPO from the Filters menu to "
                                   "download it (runs from scripts never download), or choose a model folder.",
                                   detail);
    else if (st == TTPO_STATUS_MODEL_NOT_FOUND)
        *message = g_strdup_printf("TTPO model folder not found: %s (choose the model folder, or set "
                                   "TTPO_MODEL_DIR).", detail);
    else
        *message = g_strdup_printf("TTPO failed while finding the model: %s (%s)", detail, ttpo_status_str(st));
    g_free(detail);
    return st;
}

const char *ttpo_model_size_hint(const char *repo) {
    /* SD 2.1 base, the files the engine fetches: fp16 UNet 1.73 GB, text encoder 0.68 GB,
       VAE 0.17 GB, plus configs and tokenizer. */
    if (repo && strcmp(repo, ttpo_model_default_repo()) == 0) return "about 2.6 GB";
    return "several GB";
}

struct TtpoDownload {
    ttpo_model_download *handle;
    GThread *thread;
    TtpoDownloadNotify notify;
    gpointer user;

    GMutex lock; /* guards the fields below */
    guint idle;  /* the waiting notification's source id, 0 if none */
    gboolean running;
    guint64 done, total;
    gchar *file;
    uint32_t status;
    gchar *path, *message;
};

static gboolean download_idle(gpointer data) {
    TtpoDownload *d = data;
    g_mutex_lock(&d->lock);
    d->idle = 0;
    g_mutex_unlock(&d->lock);
    d->notify(d, d->user);
    return G_SOURCE_REMOVE;
}

/* With d->lock held (so the id is stored before the idle can run and clear it). The
   worker only posts; the UI reads the latest state when the idle runs. */
static void download_post(TtpoDownload *d) {
    if (!d->idle) d->idle = g_idle_add(download_idle, d);
}

static void download_progress(void *user, const char *file, uint64_t file_done, uint64_t file_total, uint64_t done,
                              uint64_t total) {
    TtpoDownload *d = user;
    (void)file_done;
    (void)file_total;
    g_mutex_lock(&d->lock);
    if (!d->file || strcmp(d->file, file) != 0) {
        g_free(d->file);
        d->file = g_strdup(file);
    }
    d->done = done;
    d->total = total;
    download_post(d);
    g_mutex_unlock(&d->lock);
}

static gpointer download_worker(gpointer data) {
    TtpoDownload *d = data;
    char buf[4096];
    size_t len = 0;
    uint32_t st = ttpo_model_download_run(d->handle, buf, sizeof buf, &len);
    /* The library's message is per thread: read it here. */
    gchar *msg = st == TTPO_STATUS_OK ? NULL : g_strdup(ttpo_model_download_last_error(d->handle));
    g_mutex_lock(&d->lock);
    d->status = st;
    d->path = st == TTPO_STATUS_OK ? g_strdup(buf) : NULL;
    d->message = msg;
    d->running = FALSE;
    download_post(d);
    g_mutex_unlock(&d->lock);
    return NULL;
}

TtpoDownload *ttpo_download_start(const char *repo, TtpoDownloadNotify notify, gpointer user, gchar **message) {
    ttpo_model_download *handle = NULL;
    if (ttpo_model_download_new(repo, NULL, &handle) != TTPO_STATUS_OK) {
        *message = g_strdup(ttpo_last_error());
        return NULL;
    }
    TtpoDownload *d = g_new0(TtpoDownload, 1);
    d->handle = handle;
    d->notify = notify;
    d->user = user;
    d->running = TRUE;
    g_mutex_init(&d->lock);
    ttpo_model_download_set_progress_callback(handle, download_progress, d);
    d->thread = g_thread_new("ttpo-download", download_worker, d);
    return d;
}

gboolean ttpo_download_state(TtpoDownload *d, guint64 *done, guint64 *total, gchar **file) {
    g_mutex_lock(&d->lock);
    *done = d->done;
    *total = d->total;
    *file = g_strdup(d->file);
    gboolean running = d->running;
    g_mutex_unlock(&d->lock);
    return running;
}

void ttpo_download_cancel(TtpoDownload *d) {
    ttpo_model_download_cancel(d->handle);
}

uint32_t ttpo_download_finish(TtpoDownload *d, gchar **path, gchar **message) {
    g_thread_join(d->thread); /* the handle is freed only after its run has returned */
    if (d->idle) g_source_remove(d->idle); /* no notification after this */
    ttpo_model_download_free(d->handle);
    uint32_t st = d->status;
    *path = d->path;
    *message = d->message;
    g_free(d->file);
    g_mutex_clear(&d->lock);
    g_free(d);
    return st;
}

/* The model's folder for this run: found, or (interactive, a Hub repo) downloaded after
   the person agreed. CANCELLED when they declined or cancelled the download. */
static uint32_t model_folder(const TtpoHost *host, const char *model, gboolean interactive, gchar **path,
                             gchar **message) {
    gchar *repo = NULL;
    uint32_t st = ttpo_model_find(model, path, &repo, message);
    if (st == TTPO_STATUS_MODEL_NOT_FOUND && repo && interactive) {
        g_clear_pointer(message, g_free);
        st = host->download(repo, path, message);
        if (st == TTPO_STATUS_CANCELLED && !*message) *message = g_strdup("TTPO was cancelled.");
    }
    g_free(repo);
    return st;
}

/* Mirrors the task's progress to the host's progress bar (text only when it changes). */
static void host_progress(double fraction, const char *text, void *user) {
    const TtpoHost *host = user;
    static char last[128];
    if (strcmp(last, text) != 0) {
        g_strlcpy(last, text, sizeof last);
        host->progress_set_text(text);
    }
    host->progress_update(fraction);
}

/* The plug-in is a process of its own (GIMP starts it per call), so, like the ttpo CLI
   (ttpo::device::keep_freed_memory, docs/BENCHMARKS.md), it lets glibc's malloc keep freed
   memory for the next tensor instead of returning every large block to the kernel: blocks
   below 32 MiB from the heap, up to 256 MiB of free heap kept. libttpo itself never does this:
   it lives in other people's processes too. */
static void keep_freed_memory(void) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
#endif
}

TtpoProcessResult ttpo_process(const TtpoHost *host, void *ctx, TtpoParams *p, gboolean interactive,
                               gchar **message) {
    keep_freed_memory();
    gint x, y, w, h;
    float *in = host->read(ctx, &x, &y, &w, &h, message);
    if (!in) return TTPO_PROCESS_FAILED;
    gchar *folder = NULL;
    uint32_t found = model_folder(host, p->model_dir, interactive, &folder, message);
    if (found != TTPO_STATUS_OK) {
        g_free(in);
        return found == TTPO_STATUS_CANCELLED ? TTPO_PROCESS_CANCELLED : TTPO_PROCESS_FAILED;
    }
    /* The task loads the folder; p keeps what the person chose (a repo id stays one). */
    TtpoParams run = *p;
    g_strlcpy(run.model_dir, folder, sizeof run.model_dir);
    g_free(folder);
    TtpoTask *t = ttpo_task_new(&run, in, (guint)w, (guint)h);
    g_free(in);

    void *hook_user = (void *)host;
    host->progress_init("TTPO");
    uint32_t st;
    if (interactive && p->selection == 1) {
        st = host->run_phase(t, TTPO_PHASE_GENERATE, 0, 0, host_progress, hook_user);
        if (st == TTPO_STATUS_OK) {
            guint pref = 1, disp = 0;
            if (!host->pick(t, &pref, &disp)) {
                st = TTPO_STATUS_CANCELLED;
            } else {
                p->preferred = (gint32)pref;
                p->dispreferred = (gint32)disp;
                st = host->run_phase(t, TTPO_PHASE_REFINE, pref, disp, host_progress, hook_user);
            }
        }
    } else if (interactive) {
        st = host->run_phase(t, TTPO_PHASE_RUN, 0, 0, host_progress, hook_user);
    } else {
        ttpo_task_start(t, TTPO_PHASE_RUN, 0, 0);
        ttpo_task_wait(t, host_progress, hook_user);
        st = ttpo_task_status(t);
    }
    if (st != TTPO_STATUS_OK) {
        *message = g_strdup(ttpo_task_message(t));
        ttpo_task_free(t);
        host->progress_end();
        return st == TTPO_STATUS_CANCELLED ? TTPO_PROCESS_CANCELLED : TTPO_PROCESS_FAILED;
    }
    guint ow, oh;
    ttpo_task_output_size(t, &ow, &oh);
    host->write(ctx, ttpo_task_output(t), x, y, w, h, (gint)ow, (gint)oh, p->seed);
    ttpo_task_free(t);
    host->progress_end();
    return TTPO_PROCESS_OK;
}
