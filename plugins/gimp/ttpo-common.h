/*
 * Host-independent part of the TTPO GIMP plug-ins (GIMP 2.10 and GIMP 3): parameters,
 * presets (the engine's), pixel helpers and the engine job running on a worker
 * thread with progress and cancel. Depends on GLib and libttpo only (no libgimp, no GTK).
 */
#ifndef TTPO_GIMP_COMMON_H
#define TTPO_GIMP_COMMON_H

#include <glib.h>
#include "ttpo.h"

#define TTPO_PROC "plug-in-ttpo-refine"

/* Everything the dialog edits; stored as one blob for "last values" (GIMP 2.10). */
typedef struct {
    /* The model as the CLI takes it: a folder (diffusers layout), a Hugging Face repo id
       (org/name), or "" = $TTPO_MODEL_DIR if set, else ttpo_model_default_repo(). */
    gchar  model_dir[1024];
    gint32 seed;
    gint32 steps;
    gchar  strengths[256];
    gint32 selection;    /* 0 automatic, 1 given indices (interactive: let me pick) */
    gint32 preferred;
    gint32 dispreferred;
    gint32 device;       /* 0 auto, 1 CPU, 2 CUDA, 3 Metal */
    gint32 preset;       /* see ttpo_presets */
    /* Restoration network run before Stage I (ttpo_restore_name), "" = none. Its files come
       from the engine's default folder ($TTPO_RESTORE_DIR, else ~/.local/share/ttpo/restore). */
    gchar  restore[64];
    /* Stage II's metrics as ttpo_options_set_metrics takes them (names or a preset such as
       "reproduction"), "" = the engine's default set. */
    gchar  metrics[128];
} TtpoParams;

/* The presets are the engine's (ttpo_preset_name / ttpo_preset_label: Fast, Balanced, Best
   quality), then "Custom", which leaves the values alone. */
int ttpo_n_presets(void);
const char *ttpo_preset_menu_label(int index);

/* The "Restore first" menu: "None", then the engine's networks (ttpo_restore_name). */
int ttpo_restore_menu_count(void);
const char *ttpo_restore_menu_label(int index);
/* The menu index of a network name ("" or unknown: 0, None). */
int ttpo_restore_menu_index(const char *name);
/* Checks a network name against the engine's list ("" is none). Returns TRUE, or FALSE with
   a message in *error (g_free it) naming the known networks. */
gboolean ttpo_check_restore(const char *name, char **error);

/* The "Judge candidates by" menu: the engine's default metrics, or its learned-metrics
   preset (MUSIQ, MANIQA, TOPIQ-NR; their checkpoints come from `ttpo models download
   --metrics reproduction` or $TTPO_IQA_DIR, docs/METRICS.md). */
int ttpo_judge_menu_count(void);
const char *ttpo_judge_menu_label(int index);
/* The metrics value of menu entry `index` ("" = default). */
const char *ttpo_judge_menu_metrics(int index);
/* The menu index of a metrics value (anything else: 0, the default). */
int ttpo_judge_menu_index(const char *metrics);
/* Checks metric names or presets with the engine ("" is the default set). Returns TRUE, or
   FALSE with the engine's message in *error (g_free it). */
gboolean ttpo_check_metrics(const char *metrics, char **error);

void ttpo_params_defaults(TtpoParams *p);
/* Applies preset `index` to steps/strengths (Custom leaves them). */
void ttpo_params_apply_preset(TtpoParams *p, int index);

/* Checks strengths text ("0.1,0.2,0.3") with the engine's parser and ranges. Returns TRUE,
   or FALSE with a message in *error (g_free it). */
gboolean ttpo_check_strengths(const char *text, char **error);

/* Composites RGBA float (0..1) over a grey checkerboard into a w x h RGB8 thumbnail
   fitting max_side (box filter). Returns g_malloc'd pixels; *tw, *th receive its size. */
guchar *ttpo_thumbnail(const float *rgba, guint w, guint h, int max_side, int *tw, int *th);

/* A duration for people, as the engine's Estimate::describe: "45 s", "3 min 20 s",
   "1 h 05 min"; "unknown" for a negative or non-finite value. Writes buf (n bytes), returns it. */
char *ttpo_format_duration(double seconds, char *buf, size_t n);

typedef enum { TTPO_PHASE_GENERATE, TTPO_PHASE_REFINE, TTPO_PHASE_RUN } TtpoPhase;

typedef struct TtpoTask TtpoTask;

/* A task owns a copy of the input, RGBA float 0..1, w x h. */
TtpoTask *ttpo_task_new(const TtpoParams *p, const float *rgba, guint w, guint h);
/* Joins a running worker (cancelling it first) and frees everything. */
void ttpo_task_free(TtpoTask *t);
/* Starts a phase on the worker thread. GENERATE: load the model, make the job, estimate
   its time (ttpo_job_estimate; logged once to stderr, shown in the progress text), Stage I+II.
   REFINE: choose (pref, dispref) and run Stage III. RUN: everything, with the choice from
   the params (automatic or given indices). */
void ttpo_task_start(TtpoTask *t, TtpoPhase phase, guint preferred, guint dispreferred);
gboolean ttpo_task_running(TtpoTask *t);
/* Blocks until the running phase ends, calling hook about 10 times a second. */
void ttpo_task_wait(TtpoTask *t, void (*hook)(double fraction, const char *text, void *user), void *user);
/* Overall fraction 0..1 and a stage text ("Stage I: candidates 3/10"), with the time left
   once the job's estimate is known ("… — about 2 min 05 s left"; before Stage I:
   "Stage I: candidates (about 3 min 20 s in all)"). */
double ttpo_task_progress(TtpoTask *t, char *text, size_t n);
/* What the rest of the job takes by its estimate, in seconds: the estimate times the share
   of the job still to run. FALSE while no estimate is known (or it failed). */
gboolean ttpo_task_time_left(TtpoTask *t, double *seconds);
/* Asks the engine to stop (reaches ttpo_job_cancel); safe from any thread. */
void ttpo_task_cancel(TtpoTask *t);
/* After a phase: TTPO_STATUS_OK or an error; ttpo_task_message() is a sentence for people. */
uint32_t ttpo_task_status(TtpoTask *t);
const char *ttpo_task_message(TtpoTask *t);
/* The job (query it only while no phase runs), the result (after REFINE/RUN), size. */
ttpo_job *ttpo_task_job(TtpoTask *t);
const float *ttpo_task_output(TtpoTask *t);
/* The size of the result and of every candidate: the input's, or with a restore network
   its scale times larger (known once the job exists; the input's size before). */
void ttpo_task_output_size(TtpoTask *t, guint *w, guint *h);
/* Candidate thumbnail (RGB8, g_free it) and info; valid after GENERATE. */
guchar *ttpo_task_candidate_thumb(TtpoTask *t, guint index, int max_side, int *tw, int *th);

/* Finds the model's local folder without network access (ttpo_model_resolve). Returns
   TTPO_STATUS_OK with *path, else an error with *message (a sentence for people); when a
   download could get it (a Hub repo that is not in the cache), *repo names it. Free with
   g_free; the outputs not set are NULL. */
uint32_t ttpo_model_find(const char *model, gchar **path, gchar **repo, gchar **message);
/* "about 2.6 GB" for the default model; the size of another repo is known only once its
   download has listed it. */
const char *ttpo_model_size_hint(const char *repo);

/* A model download on a worker thread (ttpo_model_download_run). The library reports
   progress on that thread; here it becomes `notify` calls on the main context (g_idle_add,
   at most one waiting), where a dialog may read the state. The last call comes after the
   download ended (ttpo_download_state returns FALSE). */
typedef struct TtpoDownload TtpoDownload;
typedef void (*TtpoDownloadNotify)(TtpoDownload *d, gpointer user);
/* Starts downloading `repo`; NULL with *message when the library refuses the repo id. */
TtpoDownload *ttpo_download_start(const char *repo, TtpoDownloadNotify notify, gpointer user, gchar **message);
/* The latest progress: bytes done/total of the whole model and the current file (g_free;
   NULL before the first file). Returns TRUE while the download runs. */
gboolean ttpo_download_state(TtpoDownload *d, guint64 *done, guint64 *total, gchar **file);
/* Asks the download to stop (ttpo_model_download_cancel); any thread. */
void ttpo_download_cancel(TtpoDownload *d);
/* Joins the worker, then frees the handle and `d`. Returns the status: OK with *path (the
   model folder), else *message (the library's). */
uint32_t ttpo_download_finish(TtpoDownload *d, gchar **path, gchar **message);

/* What one run of the plug-in needs from its GIMP version (2.10 or 3): the layer's pixels,
   the result layer, the host's progress bar, and the dialogs (ttpo-ui.c, given here so
   this file stays free of libgimp and GTK). Everything else is ttpo_process(). */
typedef struct {
    /* The part of the layer to process (the selection's bounds), RGBA float 0..1,
       g_malloc'd; NULL with *message (g_malloc'd) when there is nothing to do. */
    float *(*read)(void *host, gint *x, gint *y, gint *w, gint *h, gchar **message);
    /* Puts the result into a new layer above the drawable, in one undo group: the region
       read was w x h at x, y; the result is ow x oh (larger than w x h after a restore). */
    void (*write)(void *host, const float *rgba, gint x, gint y, gint w, gint h, gint ow, gint oh, gint32 seed);
    gboolean (*progress_init)(const gchar *message);
    gboolean (*progress_set_text)(const gchar *message);
    gboolean (*progress_update)(gdouble fraction);
    gboolean (*progress_end)(void);
    /* ttpo_ui_run_phase and ttpo_ui_pick (see ttpo-ui.h). */
    uint32_t (*run_phase)(TtpoTask *t, TtpoPhase phase, guint pref, guint dispref,
                          void (*hook)(double fraction, const char *text, void *user), void *user);
    gboolean (*pick)(TtpoTask *t, guint *preferred, guint *dispreferred);
    /* ttpo_ui_download (interactive runs only): asks, downloads `repo` with progress and
       Cancel; OK with *path, CANCELLED, or an error with *message. */
    uint32_t (*download)(const char *repo, gchar **path, gchar **message);
} TtpoHost;

typedef enum { TTPO_PROCESS_OK, TTPO_PROCESS_CANCELLED, TTPO_PROCESS_FAILED } TtpoProcessResult;

/* One run: reads the layer, finds the model (interactive: offers its download when it is
   a Hub repo not on this computer; otherwise never downloads), runs the engine
   (interactive: in dialogs, with a pick when selection is 1; else on the worker with the
   host's progress bar), writes the result layer. Updates p->preferred/dispreferred with a pick. On failure *message (g_free) says why. */
TtpoProcessResult ttpo_process(const TtpoHost *host, void *ctx, TtpoParams *p, gboolean interactive,
                               gchar **message);

#endif
