/* Dialog pieces shared by the GIMP 2.10 (GTK 2) and GIMP 3 (GTK 3) plug-ins. */
#ifndef TTPO_GIMP_UI_H
#define TTPO_GIMP_UI_H

#include <gtk/gtk.h>
#include "ttpo-common.h"

typedef void (*TtpoProgressHook)(double fraction, const char *text, void *user);

/* Runs `phase` on the worker while a modal dialog shows the stage text, a progress bar
   and a Cancel button (which reaches ttpo_job_cancel). `hook` mirrors the progress to the
   host's own progress bar. Returns the task's status. */
uint32_t ttpo_ui_run_phase(TtpoTask *t, TtpoPhase phase, guint pref, guint dispref, TtpoProgressHook hook,
                           void *user);

/* After GENERATE: thumbnails of every candidate (0 = the input) with its fused score;
   the automatic choice is preselected. Returns FALSE if the person cancelled. */
gboolean ttpo_ui_pick(TtpoTask *t, guint *preferred, guint *dispreferred);

/* A Hub model that is not on this computer: asks "Download it now?" (Download / Cancel),
   then downloads it on a worker thread with a progress dialog (bytes done of total, Cancel).
   Returns TTPO_STATUS_OK with *path (the model folder), TTPO_STATUS_CANCELLED (declined
   or cancelled; partial files stay for a later resume), or an error with *message. */
uint32_t ttpo_ui_download(const char *repo, gchar **path, gchar **message);

/* Shows an error message in a modal dialog. */
void ttpo_ui_error(const char *message);

/* GTK 2/3 neutral boxes. */
GtkWidget *ttpo_ui_vbox(int spacing);
GtkWidget *ttpo_ui_hbox(int spacing);

/* The settings dialog (model: a Hub id or a folder, with a folder chooser; preset,
   strengths, seed, steps, selection mode, device). Edits *p; returns TRUE on OK. */
gboolean ttpo_ui_settings(TtpoParams *p);
#endif
