/* Dialog pieces shared by the GIMP 2.10 (GTK 2) and GIMP 3 (GTK 3) plug-ins. */
#include "ttpo-ui.h"
#include <stdio.h>

GtkWidget *ttpo_ui_vbox(int spacing) {
#if GTK_CHECK_VERSION(3, 0, 0)
    return gtk_box_new(GTK_ORIENTATION_VERTICAL, spacing);
#else
    return gtk_vbox_new(FALSE, spacing);
#endif
}

GtkWidget *ttpo_ui_hbox(int spacing) {
#if GTK_CHECK_VERSION(3, 0, 0)
    return gtk_box_new(GTK_ORIENTATION_HORIZONTAL, spacing);
#else
    return gtk_hbox_new(FALSE, spacing);
#endif
}

/* A modal progress dialog: a label, a bar and Cancel. Cancel, Escape and the window's
   close button call `cancel` once; the window stays (insensitive) until the caller's work
   has stopped and it destroys the dialog. */
typedef struct {
    GtkWidget *dialog, *label, *bar;
    void (*cancel)(gpointer data);
    gpointer data;
    gboolean cancelled;
} Progress;

static void progress_on_response(GtkDialog *d, gint response, gpointer data) {
    Progress *pr = data;
    (void)d;
    (void)response;
    if (pr->cancelled) return;
    pr->cancelled = TRUE;
    gtk_label_set_text(GTK_LABEL(pr->label), "Cancelling…");
    pr->cancel(pr->data);
    gtk_widget_set_sensitive(pr->dialog, FALSE);
}

static gboolean progress_on_delete(GtkWidget *w, GdkEvent *e, gpointer data) {
    (void)w;
    (void)e;
    progress_on_response(NULL, GTK_RESPONSE_CANCEL, data);
    return TRUE; /* keep the window until the work has stopped */
}

static void progress_open(Progress *pr, const char *title, const char *text) {
    pr->dialog = gtk_dialog_new_with_buttons(title, NULL, GTK_DIALOG_MODAL, "_Cancel", GTK_RESPONSE_CANCEL, NULL);
    gtk_window_set_default_size(GTK_WINDOW(pr->dialog), 360, -1);
    GtkWidget *box = ttpo_ui_vbox(6);
    gtk_container_set_border_width(GTK_CONTAINER(box), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(pr->dialog))), box, TRUE, TRUE, 0);
    pr->label = gtk_label_new(text);
    gtk_box_pack_start(GTK_BOX(box), pr->label, FALSE, FALSE, 0);
    pr->bar = gtk_progress_bar_new();
#if GTK_CHECK_VERSION(3, 0, 0)
    gtk_progress_bar_set_show_text(GTK_PROGRESS_BAR(pr->bar), TRUE);
#endif
    gtk_box_pack_start(GTK_BOX(box), pr->bar, FALSE, FALSE, 0);
    g_signal_connect(pr->dialog, "response", G_CALLBACK(progress_on_response), pr);
    g_signal_connect(pr->dialog, "delete-event", G_CALLBACK(progress_on_delete), pr);
    gtk_widget_show_all(pr->dialog);
}

typedef struct {
    Progress pr;
    TtpoTask *task;
    GMainLoop *loop;
    TtpoProgressHook hook;
    void *user;
} Run;

static gboolean poll_task(gpointer data) {
    Run *r = data;
    char text[128];
    double f = ttpo_task_progress(r->task, text, sizeof text);
    if (r->pr.cancelled) g_strlcpy(text, "Cancelling…", sizeof text);
    gtk_label_set_text(GTK_LABEL(r->pr.label), text);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(r->pr.bar), f);
    /* The time left in the title too, so window lists and task bars show it. */
    char title[64] = "TTPO", d[32];
    double left;
    if (!r->pr.cancelled && ttpo_task_time_left(r->task, &left))
        g_snprintf(title, sizeof title, "TTPO: about %s left", ttpo_format_duration(left, d, sizeof d));
    if (g_strcmp0(gtk_window_get_title(GTK_WINDOW(r->pr.dialog)), title) != 0)
        gtk_window_set_title(GTK_WINDOW(r->pr.dialog), title);
    if (r->hook) r->hook(f, text, r->user);
    if (!ttpo_task_running(r->task)) {
        g_main_loop_quit(r->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void cancel_task(gpointer data) {
    ttpo_task_cancel(((Run *)data)->task); /* reaches the engine's cancel */
}

uint32_t ttpo_ui_run_phase(TtpoTask *t, TtpoPhase phase, guint pref, guint dispref, TtpoProgressHook hook,
                           void *user) {
    Run r = {0};
    r.task = t;
    r.hook = hook;
    r.user = user;
    r.pr.cancel = cancel_task;
    r.pr.data = &r;
    progress_open(&r.pr, "TTPO", phase == TTPO_PHASE_REFINE ? "Stage III: refining" : "Loading the model");

    r.loop = g_main_loop_new(NULL, FALSE);
    ttpo_task_start(t, phase, pref, dispref);
    g_timeout_add(100, poll_task, &r);
    g_main_loop_run(r.loop);
    g_main_loop_unref(r.loop);
    ttpo_task_wait(t, NULL, NULL); /* joins the finished worker */
    gtk_widget_destroy(r.pr.dialog);
    return ttpo_task_status(t);
}

/* ---- The model download: ask, then a progress dialog fed by the download's notifications */

typedef struct {
    Progress pr;
    TtpoDownload *download;
    GMainLoop *loop;
} Fetch;

static void cancel_download(gpointer data) {
    ttpo_download_cancel(((Fetch *)data)->download);
}

/* On the main context (ttpo-common.c marshals the worker's reports with g_idle_add). */
static void fetch_notify(TtpoDownload *d, gpointer data) {
    Fetch *f = data;
    guint64 done = 0, total = 0;
    gchar *file = NULL;
    gboolean running = ttpo_download_state(d, &done, &total, &file);
    if (file && !f->pr.cancelled) {
        gchar *text = g_strdup_printf("Downloading %s", file);
        gtk_label_set_text(GTK_LABEL(f->pr.label), text);
        g_free(text);
    }
    if (total) {
        gchar *a = g_format_size(done), *b = g_format_size(total);
        gchar *text = g_strdup_printf("%s of %s", a, b);
        gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(f->pr.bar), CLAMP((double)done / (double)total, 0.0, 1.0));
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(f->pr.bar), text);
        g_free(text);
        g_free(a);
        g_free(b);
    }
    g_free(file);
    if (!running) g_main_loop_quit(f->loop);
}

/* "Download it now?" Returns TRUE for Download. */
static gboolean ask_download(const char *repo) {
    GtkWidget *d = gtk_message_dialog_new(NULL, GTK_DIALOG_MODAL, GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                          "The model %s is not on this computer (%s). Download it now?", repo,
                                          ttpo_model_size_hint(repo));
    gtk_message_dialog_format_secondary_text(
        GTK_MESSAGE_DIALOG(d), "It goes into the Hugging Face cache, where TTPO finds it next time. A cancelled "
                               "download resumes where it stopped.");
    gtk_dialog_add_buttons(GTK_DIALOG(d), "_Cancel", GTK_RESPONSE_CANCEL, "_Download", GTK_RESPONSE_ACCEPT, NULL);
    gtk_dialog_set_default_response(GTK_DIALOG(d), GTK_RESPONSE_ACCEPT);
    gtk_window_set_title(GTK_WINDOW(d), "TTPO — download the model");
    gboolean yes = gtk_dialog_run(GTK_DIALOG(d)) == GTK_RESPONSE_ACCEPT;
    gtk_widget_destroy(d);
    return yes;
}

uint32_t ttpo_ui_download(const char *repo, gchar **path, gchar **message) {
    *path = *message = NULL;
    if (!ask_download(repo)) return TTPO_STATUS_CANCELLED;
    Fetch f = {0};
    gchar *err = NULL;
    f.loop = g_main_loop_new(NULL, FALSE);
    f.download = ttpo_download_start(repo, fetch_notify, &f, &err);
    uint32_t st = TTPO_STATUS_INVALID_ARGUMENT;
    if (f.download) {
        f.pr.cancel = cancel_download;
        f.pr.data = &f;
        progress_open(&f.pr, "TTPO — downloading the model", "Connecting…");
        g_main_loop_run(f.loop); /* until the notification after the download ended */
        st = ttpo_download_finish(f.download, path, &err);
        gtk_widget_destroy(f.pr.dialog);
    }
    g_main_loop_unref(f.loop);
    if (st != TTPO_STATUS_OK && st != TTPO_STATUS_CANCELLED)
        *message = g_strdup_printf("TTPO could not download the model %s: %s (%s)", repo, err ? err : "",
                                   ttpo_status_str(st));
    g_free(err);
    return st;
}

static void free_pixels(guchar *px, gpointer data) {
    (void)data;
    g_free(px);
}

typedef struct {
    guint *best, *worst;
    guint i;
} Pick;

static void on_toggle(GtkToggleButton *b, gpointer data) {
    Pick *p = data;
    if (gtk_toggle_button_get_active(b)) *p->best = p->i;
}

static void on_toggle_worst(GtkToggleButton *b, gpointer data) {
    Pick *p = data;
    if (gtk_toggle_button_get_active(b)) *p->worst = p->i;
}

gboolean ttpo_ui_pick(TtpoTask *t, guint *preferred, guint *dispreferred) {
    ttpo_job *job = ttpo_task_job(t);
    uint32_t n = 0;
    ttpo_job_candidate_count(job, &n);
    ttpo_job_get_choice(job, preferred, dispreferred);
    guint best = *preferred, worst = *dispreferred;

    GtkWidget *dialog = gtk_dialog_new_with_buttons("TTPO — pick the best and the worst", NULL, GTK_DIALOG_MODAL,
                                                    "_Cancel", GTK_RESPONSE_CANCEL, "_Refine", GTK_RESPONSE_OK, NULL);
    gtk_dialog_set_default_response(GTK_DIALOG(dialog), GTK_RESPONSE_OK);
    GtkWidget *outer = ttpo_ui_vbox(6);
    gtk_container_set_border_width(GTK_CONTAINER(outer), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), outer, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(outer),
                       gtk_label_new("Candidate 0 is the input. The automatic choice is preselected;\n"
                                     "Stage III moves toward \"best\" and away from \"worst\"."),
                       FALSE, FALSE, 0);
    GtkWidget *row = ttpo_ui_hbox(8);
    gtk_box_pack_start(GTK_BOX(outer), row, TRUE, TRUE, 0);

    Pick *picks = g_new0(Pick, n);
    GSList *g_best = NULL, *g_worst = NULL;
    for (uint32_t i = 0; i < n; i++) {
        double strength = 0, score = 0;
        uint64_t seed = 0;
        ttpo_job_candidate_info(job, i, &strength, &seed, &score);
        GtkWidget *col = ttpo_ui_vbox(4);
        int tw = 0, th = 0;
        guchar *px = ttpo_task_candidate_thumb(t, i, 128, &tw, &th);
        if (px) {
            GdkPixbuf *pb = gdk_pixbuf_new_from_data(px, GDK_COLORSPACE_RGB, FALSE, 8, tw, th, tw * 3,
                                                     free_pixels, NULL);
            gtk_box_pack_start(GTK_BOX(col), gtk_image_new_from_pixbuf(pb), FALSE, FALSE, 0);
            g_object_unref(pb);
        }
        gchar *text = i == 0 ? g_strdup_printf("#0 input\nscore %.3f", score)
                             : g_strdup_printf("#%u strength %.2f\nscore %.3f", i, strength, score);
        gtk_box_pack_start(GTK_BOX(col), gtk_label_new(text), FALSE, FALSE, 0);
        g_free(text);
        picks[i].best = &best;
        picks[i].worst = &worst;
        picks[i].i = i;
        GtkWidget *rb = gtk_radio_button_new_with_label(g_best, "best");
        g_best = gtk_radio_button_get_group(GTK_RADIO_BUTTON(rb));
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(rb), i == best);
        g_signal_connect(rb, "toggled", G_CALLBACK(on_toggle), &picks[i]);
        gtk_box_pack_start(GTK_BOX(col), rb, FALSE, FALSE, 0);
        GtkWidget *rw = gtk_radio_button_new_with_label(g_worst, "worst");
        g_worst = gtk_radio_button_get_group(GTK_RADIO_BUTTON(rw));
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(rw), i == worst);
        g_signal_connect(rw, "toggled", G_CALLBACK(on_toggle_worst), &picks[i]);
        gtk_box_pack_start(GTK_BOX(col), rw, FALSE, FALSE, 0);
        gtk_box_pack_start(GTK_BOX(row), col, FALSE, FALSE, 0);
    }
    gtk_widget_show_all(dialog);
    gboolean ok = FALSE;
    for (;;) {
        gint resp = gtk_dialog_run(GTK_DIALOG(dialog));
        if (resp != GTK_RESPONSE_OK) break;
        if (best == worst) {
            ttpo_ui_error("The best and the worst candidate must differ.");
            continue;
        }
        ok = TRUE;
        break;
    }
    gtk_widget_destroy(dialog);
    g_free(picks);
    *preferred = best;
    *dispreferred = worst;
    return ok;
}

void ttpo_ui_error(const char *message) {
    GtkWidget *d = gtk_message_dialog_new(NULL, GTK_DIALOG_MODAL, GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE, "%s", message);
    gtk_window_set_title(GTK_WINDOW(d), "TTPO");
    gtk_dialog_run(GTK_DIALOG(d));
    gtk_widget_destroy(d);
}

typedef struct {
    GtkWidget *model, *folder, *preset, *strengths, *seed, *steps, *selection, *device, *restore, *judge;
    gboolean updating;
} Settings;

static GtkWidget *combo(const char *const *items, int n, int active) {
    GtkWidget *c = gtk_combo_box_text_new();
    for (int i = 0; i < n; i++) gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(c), items[i]);
    gtk_combo_box_set_active(GTK_COMBO_BOX(c), active);
    return c;
}

static void on_preset(GtkComboBox *c, gpointer data) {
    Settings *s = data;
    int i = gtk_combo_box_get_active(c);
    if (i < 0 || i >= ttpo_n_presets() - 1) return; /* Custom leaves the values */
    TtpoParams v;
    ttpo_params_defaults(&v);
    ttpo_params_apply_preset(&v, i);
    s->updating = TRUE;
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(s->steps), v.steps);
    gtk_entry_set_text(GTK_ENTRY(s->strengths), v.strengths);
    s->updating = FALSE;
}

static void on_custom(GtkWidget *w, gpointer data) {
    Settings *s = data;
    (void)w;
    if (!s->updating) gtk_combo_box_set_active(GTK_COMBO_BOX(s->preset), ttpo_n_presets() - 1);
}

/* The folder button writes the chosen folder into the model entry (the one value). */
static void on_folder(GtkFileChooserButton *b, gpointer data) {
    Settings *s = data;
    gchar *dir = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(b));
    if (dir) gtk_entry_set_text(GTK_ENTRY(s->model), dir);
    g_free(dir);
}

static void add_row(GtkWidget *box, GtkSizeGroup *sg, const char *label, GtkWidget *widget) {
    GtkWidget *row = ttpo_ui_hbox(8);
    GtkWidget *l = gtk_label_new_with_mnemonic(label);
#if GTK_CHECK_VERSION(3, 16, 0)
    gtk_label_set_xalign(GTK_LABEL(l), 0.0f);
#else
    gtk_misc_set_alignment(GTK_MISC(l), 0.0f, 0.5f);
#endif
    gtk_label_set_mnemonic_widget(GTK_LABEL(l), widget);
    gtk_size_group_add_widget(sg, l);
    gtk_box_pack_start(GTK_BOX(row), l, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(row), widget, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(box), row, FALSE, FALSE, 0);
}

gboolean ttpo_ui_settings(TtpoParams *p) {
    Settings s = {0};
    GtkWidget *dialog = gtk_dialog_new_with_buttons("TTPO — test-time preference optimization", NULL, 0, "_Cancel",
                                                    GTK_RESPONSE_CANCEL, "_OK", GTK_RESPONSE_OK, NULL);
    gtk_dialog_set_default_response(GTK_DIALOG(dialog), GTK_RESPONSE_OK);
    GtkWidget *box = ttpo_ui_vbox(6);
    gtk_container_set_border_width(GTK_CONTAINER(box), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), box, TRUE, TRUE, 0);
    GtkSizeGroup *sg = gtk_size_group_new(GTK_SIZE_GROUP_HORIZONTAL);

    /* The model as the CLI takes it: a Hub repo id or a folder, typed or picked with the
       folder button. Empty: $TTPO_MODEL_DIR if set, else the default model. */
    GtkWidget *mrow = ttpo_ui_hbox(4);
    s.model = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(s.model), p->model_dir);
    gtk_entry_set_activates_default(GTK_ENTRY(s.model), TRUE);
    gtk_entry_set_width_chars(GTK_ENTRY(s.model), 36);
    gchar *tip = g_strdup_printf("A Hugging Face model (org/name) or a model folder (diffusers layout; the button "
                                 "picks one). Empty: $TTPO_MODEL_DIR if set, else %s. A Hub model that is not on "
                                 "this computer is offered for download when you press OK.",
                                 ttpo_model_default_repo());
    gtk_widget_set_tooltip_text(s.model, tip);
    g_free(tip);
#if GTK_CHECK_VERSION(3, 2, 0)
    gtk_entry_set_placeholder_text(GTK_ENTRY(s.model), ttpo_model_default_repo());
#endif
    gtk_box_pack_start(GTK_BOX(mrow), s.model, TRUE, TRUE, 0);
    s.folder = gtk_file_chooser_button_new("TTPO — choose the model folder", GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER);
    gtk_widget_set_tooltip_text(s.folder, "Choose a model folder (diffusers layout: model_index.json, unet/ or transformer/, vae/, …; SD 1.x/2.x, SD3 or FLUX.1)");
    if (g_file_test(p->model_dir, G_FILE_TEST_IS_DIR))
        gtk_file_chooser_set_filename(GTK_FILE_CHOOSER(s.folder), p->model_dir);
    else /* not GTK 2's "Recently Used", which lists no folders */
        gtk_file_chooser_set_current_folder(GTK_FILE_CHOOSER(s.folder), g_get_home_dir());
    g_signal_connect(s.folder, "file-set", G_CALLBACK(on_folder), &s);
    gtk_box_pack_start(GTK_BOX(mrow), s.folder, FALSE, FALSE, 0);
    add_row(box, sg, "_Model:", mrow);

    const char *names[16];
    int n_presets = MIN(ttpo_n_presets(), (int)G_N_ELEMENTS(names));
    for (int i = 0; i < n_presets; i++) names[i] = ttpo_preset_menu_label(i);
    s.preset = combo(names, n_presets, p->preset);
    add_row(box, sg, "_Preset:", s.preset);

    s.strengths = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(s.strengths), p->strengths);
    gtk_entry_set_activates_default(GTK_ENTRY(s.strengths), TRUE);
    gtk_widget_set_tooltip_text(s.strengths, "img2img strengths of the candidates, comma-separated, each 0..1");
    add_row(box, sg, "S_trengths:", s.strengths);

    s.seed = gtk_spin_button_new_with_range(0, G_MAXINT32, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(s.seed), p->seed);
    gtk_entry_set_activates_default(GTK_ENTRY(s.seed), TRUE);
    add_row(box, sg, "_Seed:", s.seed);

    s.steps = gtk_spin_button_new_with_range(1, 1000, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(s.steps), p->steps);
    gtk_entry_set_activates_default(GTK_ENTRY(s.steps), TRUE);
    add_row(box, sg, "S_teps:", s.steps);

    static const char *const sel[] = {"Automatic (metrics choose)", "Let me pick"};
    s.selection = combo(sel, 2, p->selection ? 1 : 0);
    add_row(box, sg, "Se_lection:", s.selection);

    /* Restore first: None, then the engine's networks; the tooltip carries their
       descriptions (ttpo_restore_description), so the plug-in never repeats the list. */
    const char *nets[32];
    int n_nets = MIN(ttpo_restore_menu_count(), (int)G_N_ELEMENTS(nets));
    GString *rtip = g_string_new("A restoration network run on the layer before Stage I; the result is larger "
                                 "by its factor (a new layer; a layer filling the canvas enlarges the canvas).\n"
                                 "None: no restore step.");
    for (int i = 0; i < n_nets; i++) {
        nets[i] = ttpo_restore_menu_label(i);
        if (i > 0) g_string_append_printf(rtip, "\n%s: %s", nets[i], ttpo_restore_description((uint32_t)(i - 1)));
    }
    s.restore = combo(nets, n_nets, ttpo_restore_menu_index(p->restore));
    gtk_widget_set_tooltip_text(s.restore, rtip->str);
    g_string_free(rtip, TRUE);
    add_row(box, sg, "_Restore first:", s.restore);

    /* Judge candidates by: the engine's default metrics or its learned-metrics preset. */
    const char *judges[4];
    int n_judges = MIN(ttpo_judge_menu_count(), (int)G_N_ELEMENTS(judges));
    for (int i = 0; i < n_judges; i++) judges[i] = ttpo_judge_menu_label(i);
    s.judge = combo(judges, n_judges, ttpo_judge_menu_index(p->metrics));
    gtk_widget_set_tooltip_text(s.judge,
                                "How the automatic choice (and the scores in the picker) judges the candidates.\n"
                                "Default: NIQE and PIQE, fast, no extra files.\n"
                                "Learned: MUSIQ, MANIQA and TOPIQ-NR (the preference-aligned metrics of the "
                                "method's reproduction), much slower (MANIQA takes about a minute per candidate "
                                "on a CPU); their weights are pyiqa's checkpoints: fetch them with `ttpo models "
                                "download --metrics reproduction` or put them in $TTPO_IQA_DIR.");
    add_row(box, sg, "_Judge candidates by:", s.judge);

    static const char *const dev[] = {"Automatic", "CPU", "CUDA GPU", "Metal GPU"};
    s.device = combo(dev, 4, CLAMP(p->device, 0, 3));
    add_row(box, sg, "_Device:", s.device);

    g_signal_connect(s.preset, "changed", G_CALLBACK(on_preset), &s);
    g_signal_connect(s.strengths, "changed", G_CALLBACK(on_custom), &s);
    g_signal_connect(s.steps, "value-changed", G_CALLBACK(on_custom), &s);
    g_object_unref(sg);
    gtk_widget_show_all(dialog);

    gboolean ok = FALSE;
    for (;;) {
        if (gtk_dialog_run(GTK_DIALOG(dialog)) != GTK_RESPONSE_OK) break;
        char *err = NULL;
        if (!ttpo_check_strengths(gtk_entry_get_text(GTK_ENTRY(s.strengths)), &err)) {
            ttpo_ui_error(err);
            g_free(err);
            continue;
        }
        gchar *model = g_strstrip(g_strdup(gtk_entry_get_text(GTK_ENTRY(s.model))));
        g_strlcpy(p->model_dir, model, sizeof p->model_dir);
        g_free(model);
        g_strlcpy(p->strengths, gtk_entry_get_text(GTK_ENTRY(s.strengths)), sizeof p->strengths);
        p->preset = gtk_combo_box_get_active(GTK_COMBO_BOX(s.preset));
        p->seed = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(s.seed));
        p->steps = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(s.steps));
        p->selection = gtk_combo_box_get_active(GTK_COMBO_BOX(s.selection));
        p->device = gtk_combo_box_get_active(GTK_COMBO_BOX(s.device));
        int r = gtk_combo_box_get_active(GTK_COMBO_BOX(s.restore));
        g_strlcpy(p->restore, r > 0 ? ttpo_restore_menu_label(r) : "", sizeof p->restore);
        g_strlcpy(p->metrics, ttpo_judge_menu_metrics(gtk_combo_box_get_active(GTK_COMBO_BOX(s.judge))),
                  sizeof p->metrics);
        ok = TRUE;
        break;
    }
    gtk_widget_destroy(dialog);
    return ok;
}
