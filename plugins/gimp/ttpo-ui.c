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

typedef struct {
    TtpoTask *task;
    GtkWidget *dialog, *label, *bar;
    GMainLoop *loop;
    TtpoProgressHook hook;
    void *user;
    gboolean cancelled;
} Run;

static gboolean poll_task(gpointer data) {
    Run *r = data;
    char text[128];
    double f = ttpo_task_progress(r->task, text, sizeof text);
    if (r->cancelled) g_strlcpy(text, "Cancelling…", sizeof text);
    gtk_label_set_text(GTK_LABEL(r->label), text);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(r->bar), f);
    if (r->hook) r->hook(f, text, r->user);
    if (!ttpo_task_running(r->task)) {
        g_main_loop_quit(r->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void on_response(GtkDialog *d, gint response, gpointer data) {
    Run *r = data;
    (void)d;
    (void)response;
    /* Cancel button, Escape and the window's close button all cancel the engine. */
    r->cancelled = TRUE;
    ttpo_task_cancel(r->task);
    gtk_widget_set_sensitive(r->dialog, FALSE);
}

static gboolean on_delete(GtkWidget *w, GdkEvent *e, gpointer data) {
    (void)w;
    (void)e;
    on_response(NULL, GTK_RESPONSE_CANCEL, data);
    return TRUE; /* keep the window until the worker has stopped */
}

uint32_t ttpo_ui_run_phase(TtpoTask *t, TtpoPhase phase, guint pref, guint dispref, TtpoProgressHook hook,
                           void *user) {
    Run r = {0};
    r.task = t;
    r.hook = hook;
    r.user = user;
    r.dialog = gtk_dialog_new_with_buttons("TTPO", NULL, GTK_DIALOG_MODAL, "_Cancel", GTK_RESPONSE_CANCEL, NULL);
    gtk_window_set_default_size(GTK_WINDOW(r.dialog), 360, -1);
    GtkWidget *box = ttpo_ui_vbox(6);
    gtk_container_set_border_width(GTK_CONTAINER(box), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(r.dialog))), box, TRUE, TRUE, 0);
    r.label = gtk_label_new(phase == TTPO_PHASE_REFINE ? "Stage III: refining" : "Loading the model");
    gtk_box_pack_start(GTK_BOX(box), r.label, FALSE, FALSE, 0);
    r.bar = gtk_progress_bar_new();
    gtk_box_pack_start(GTK_BOX(box), r.bar, FALSE, FALSE, 0);
    g_signal_connect(r.dialog, "response", G_CALLBACK(on_response), &r);
    g_signal_connect(r.dialog, "delete-event", G_CALLBACK(on_delete), &r);
    gtk_widget_show_all(r.dialog);

    r.loop = g_main_loop_new(NULL, FALSE);
    ttpo_task_start(t, phase, pref, dispref);
    g_timeout_add(100, poll_task, &r);
    g_main_loop_run(r.loop);
    g_main_loop_unref(r.loop);
    ttpo_task_wait(t, NULL, NULL); /* joins the finished worker */
    gtk_widget_destroy(r.dialog);
    return ttpo_task_status(t);
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
    GtkWidget *folder, *preset, *strengths, *seed, *steps, *selection, *device;
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

    /* A plain entry (empty = $TTPO_MODEL_DIR) plus a folder chooser button. */
    GtkWidget *frow = ttpo_ui_hbox(4);
    s.folder = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(s.folder), p->model_dir);
    gtk_entry_set_activates_default(GTK_ENTRY(s.folder), TRUE);
    gtk_widget_set_tooltip_text(s.folder, "A Stable Diffusion model folder (diffusers layout). Empty: $TTPO_MODEL_DIR.");
    gtk_entry_set_width_chars(GTK_ENTRY(s.folder), 36);
    gtk_box_pack_start(GTK_BOX(frow), s.folder, TRUE, TRUE, 0);
    add_row(box, sg, "_Model folder:", frow);

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
        g_strlcpy(p->model_dir, gtk_entry_get_text(GTK_ENTRY(s.folder)), sizeof p->model_dir);
        g_strlcpy(p->strengths, gtk_entry_get_text(GTK_ENTRY(s.strengths)), sizeof p->strengths);
        p->preset = gtk_combo_box_get_active(GTK_COMBO_BOX(s.preset));
        p->seed = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(s.seed));
        p->steps = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(s.steps));
        p->selection = gtk_combo_box_get_active(GTK_COMBO_BOX(s.selection));
        p->device = gtk_combo_box_get_active(GTK_COMBO_BOX(s.device));
        ok = TRUE;
        break;
    }
    gtk_widget_destroy(dialog);
    return ok;
}
