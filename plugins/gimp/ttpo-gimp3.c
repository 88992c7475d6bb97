/*
 * TTPO for GIMP 3 (libgimp-3.0, GTK 3): Filters > Enhance > TTPO…
 * PDB: plug-in-ttpo-refine with the arguments of the GIMP 2.10 version (model-folder,
 * seed, steps, strengths, selection, preferred, dispreferred, restore, metrics) after GIMP
 * 3's own run-mode, image and drawables; restore and metrics (added last) default to ""
 * (none, the engine's default metrics), so callers that do not set them run as before. Device and preset are remembered "aux" arguments
 * (dialog only).
 * The result goes to a new layer above the drawable, in one undo group; nothing touches
 * the image until the engine has finished.
 */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <string.h>
#include "ttpo-common.h"
#include "ttpo-ui.h"
#include "ttpo-host.h"

typedef struct { GimpPlugIn parent_instance; } Ttpo;
typedef struct { GimpPlugInClass parent_class; } TtpoClass;

static GType ttpo_get_type(void);
G_DEFINE_TYPE(Ttpo, ttpo, GIMP_TYPE_PLUG_IN)

static GList *ttpo_query(GimpPlugIn *plug_in) {
    (void)plug_in;
    return g_list_append(NULL, g_strdup(TTPO_PROC));
}

static GimpValueArray *ttpo_run(GimpProcedure *procedure, GimpRunMode run_mode, GimpImage *image,
                                GimpDrawable **drawables, GimpProcedureConfig *config, gpointer run_data);

static GimpProcedure *ttpo_create_procedure(GimpPlugIn *plug_in, const gchar *name) {
    if (strcmp(name, TTPO_PROC) != 0) return NULL;
    TtpoParams d;
    ttpo_params_defaults(&d);
    GimpProcedure *p = gimp_image_procedure_new(plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN, ttpo_run, NULL, NULL);
    gimp_procedure_set_image_types(p, "RGB*, GRAY*");
    gimp_procedure_set_sensitivity_mask(p, GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
    gimp_procedure_set_menu_label(p, "_TTPO...");
    gimp_procedure_add_menu_path(p, "<Image>/Filters/Enhance");
    gimp_procedure_set_documentation(
        p, "Restore the layer with TTPO (test-time preference optimization)",
        "Makes candidates with a diffusion model, scores them with no-reference quality metrics (or lets you "
        "pick), and refines toward the preferred one. The result is a new layer above the original; a "
        "selection limits the change.",
        name);
    gimp_procedure_set_attribution(p, "TTPO authors", "TTPO authors", "2026");
    gimp_procedure_add_string_argument(p, "model-folder", "Model folder",
                                       "Model: a folder (diffusers layout) or a Hugging Face repo id (org/name); "
                                       "empty = $TTPO_MODEL_DIR, else the default model. Non-interactive calls never "
                                       "download.",
                                       "",
                                       G_PARAM_READWRITE);
    gimp_procedure_add_int_argument(p, "seed", "Seed", "Job seed", 0, G_MAXINT32, d.seed, G_PARAM_READWRITE);
    gimp_procedure_add_int_argument(p, "steps", "Steps", "Sampler steps of Stage I and Stage III", 1, 1000, d.steps,
                                    G_PARAM_READWRITE);
    gimp_procedure_add_string_argument(p, "strengths", "Strengths",
                                       "img2img strengths of the candidates, comma-separated, e.g. \"0.1,0.2,0.3\"",
                                       d.strengths, G_PARAM_READWRITE);
    gimp_procedure_add_int_argument(p, "selection", "Selection", "Candidate choice: 0 automatic, 1 the given indices",
                                    0, 1, 0, G_PARAM_READWRITE);
    gimp_procedure_add_int_argument(p, "preferred", "Preferred", "Preferred candidate index (0 = the input)", 0, 1024,
                                    d.preferred, G_PARAM_READWRITE);
    gimp_procedure_add_int_argument(p, "dispreferred", "Dispreferred", "Dispreferred candidate index", 0, 1024,
                                    d.dispreferred, G_PARAM_READWRITE);
    gimp_procedure_add_string_argument(p, "restore", "Restore first",
                                       "Restoration network run before Stage I (\"rdn-x2\", \"realesrgan-x4\", ...: "
                                       "ttpo restore --help lists them); \"\" = none. The result is larger by its "
                                       "factor; a layer filling the canvas enlarges the canvas. Files from "
                                       "$TTPO_RESTORE_DIR, else ~/.local/share/ttpo/restore.",
                                       "", G_PARAM_READWRITE);
    gimp_procedure_add_string_argument(p, "metrics", "Judge candidates by",
                                       "Stage II's metrics, comma-separated names or a preset (\"reproduction\" = "
                                       "musiq,maniqa,topiq, the learned metrics; \"classical\" = niqe,piqe); \"\" = "
                                       "the engine's default set. The learned metrics read pyiqa's checkpoints "
                                       "(docs/METRICS.md).",
                                       "", G_PARAM_READWRITE);
    gimp_procedure_add_int_aux_argument(p, "device", "Device", "0 automatic, 1 CPU, 2 CUDA, 3 Metal", 0, 3, 0,
                                        G_PARAM_READWRITE);
    gimp_procedure_add_int_aux_argument(p, "preset", "Preset", "Quality/speed preset", 0, ttpo_n_presets() - 1,
                                        d.preset, G_PARAM_READWRITE);
    return p;
}

/* No translations shipped: say so, instead of GIMP looking for a locale folder. */
static gboolean ttpo_set_i18n(GimpPlugIn *plug_in, const gchar *name, gchar **domain, gchar **catalog) {
    (void)plug_in;
    (void)name;
    (void)domain;
    (void)catalog;
    return FALSE;
}

static void ttpo_class_init(TtpoClass *klass) {
    GimpPlugInClass *pc = GIMP_PLUG_IN_CLASS(klass);
    pc->set_i18n = ttpo_set_i18n;
    pc->query_procedures = ttpo_query;
    pc->create_procedure = ttpo_create_procedure;
}

static void ttpo_init(Ttpo *self) { (void)self; }

static void config_to_params(GimpProcedureConfig *config, TtpoParams *p) {
    gchar *folder = NULL, *strengths = NULL, *restore = NULL, *metrics = NULL;
    g_object_get(config, "model-folder", &folder, "seed", &p->seed, "steps", &p->steps, "strengths", &strengths,
                 "selection", &p->selection, "preferred", &p->preferred, "dispreferred", &p->dispreferred, "device",
                 &p->device, "preset", &p->preset, "restore", &restore, "metrics", &metrics, NULL);
    g_strlcpy(p->model_dir, folder ? folder : "", sizeof p->model_dir);
    g_strlcpy(p->strengths, strengths ? strengths : "", sizeof p->strengths);
    g_strlcpy(p->restore, restore ? restore : "", sizeof p->restore);
    g_strlcpy(p->metrics, metrics ? metrics : "", sizeof p->metrics);
    g_free(metrics);
    g_free(folder);
    g_free(strengths);
    g_free(restore);
}

static void params_to_config(const TtpoParams *p, GimpProcedureConfig *config) {
    g_object_set(config, "model-folder", p->model_dir, "seed", p->seed, "steps", p->steps, "strengths", p->strengths,
                 "selection", p->selection, "preferred", p->preferred, "dispreferred", p->dispreferred, "device",
                 p->device, "preset", p->preset, "restore", p->restore, "metrics", p->metrics, NULL);
}

/* host_read, host_write, HOST and process(): ttpo-host.h, shared with the other GIMP version. */

static GimpValueArray *ttpo_run(GimpProcedure *procedure, GimpRunMode run_mode, GimpImage *image,
                                GimpDrawable **drawables, GimpProcedureConfig *config, gpointer run_data) {
    (void)run_data;
    TtpoParams p;
    ttpo_params_defaults(&p);
    config_to_params(config, &p);
    if (!drawables || !drawables[0] || drawables[1]) {
        GError *e = g_error_new_literal(GIMP_PLUG_IN_ERROR, 0, "TTPO works on exactly one selected layer.");
        return gimp_procedure_new_return_values(procedure, GIMP_PDB_CALLING_ERROR, e);
    }
    if (run_mode == GIMP_RUN_NONINTERACTIVE) {
        p.device = 0;
        if (p.selection == 1 && p.preferred == p.dispreferred) {
            GError *e = g_error_new_literal(GIMP_PLUG_IN_ERROR, 0,
                                            "TTPO: with selection 1, preferred and dispreferred must differ");
            return gimp_procedure_new_return_values(procedure, GIMP_PDB_CALLING_ERROR, e);
        }
        char *bad = NULL;
        if (!ttpo_check_restore(p.restore, &bad) || !ttpo_check_metrics(p.metrics, &bad)) {
            GError *e = g_error_new(GIMP_PLUG_IN_ERROR, 0, "TTPO: %s", bad);
            g_free(bad);
            return gimp_procedure_new_return_values(procedure, GIMP_PDB_CALLING_ERROR, e);
        }
    } else if (run_mode == GIMP_RUN_INTERACTIVE) {
        gimp_ui_init("ttpo");
        if (!ttpo_ui_settings(&p)) return gimp_procedure_new_return_values(procedure, GIMP_PDB_CANCEL, NULL);
        params_to_config(&p, config);
    }
    gchar *message = NULL;
    GimpPDBStatusType status = process(image, drawables[0], &p, run_mode == GIMP_RUN_INTERACTIVE, &message);
    if (status == GIMP_PDB_SUCCESS) {
        if (run_mode == GIMP_RUN_INTERACTIVE) params_to_config(&p, config); /* remembers the picked indices */
        if (run_mode != GIMP_RUN_NONINTERACTIVE) gimp_displays_flush();
        g_free(message);
        return gimp_procedure_new_return_values(procedure, GIMP_PDB_SUCCESS, NULL);
    }
    if (status == GIMP_PDB_EXECUTION_ERROR && run_mode == GIMP_RUN_INTERACTIVE) ttpo_ui_error(message);
    GError *e = g_error_new_literal(GIMP_PLUG_IN_ERROR, 0, message ? message : "TTPO failed");
    g_free(message);
    return gimp_procedure_new_return_values(procedure, status, e);
}

GIMP_MAIN(ttpo_get_type())
