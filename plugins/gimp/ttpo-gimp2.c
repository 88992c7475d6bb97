/*
 * TTPO for GIMP 2.10 (libgimp-2.0, GTK 2): Filters > Enhance > TTPO…
 * PDB: plug-in-ttpo-refine (run-mode, image, drawable, model-folder, seed, steps,
 *      strengths, selection, preferred, dispreferred, restore, metrics).
 * restore and metrics (added last): the plug-in also accepts the 10 or 11 arguments of
 * before (no restore step, default metrics) from callers that reach it with fewer; Script-Fu
 * checks the count against the registration first and refuses them, so Script-Fu scripts
 * pass all 12 (docs/GIMP.md).
 * The result goes to a new layer above the drawable, in one undo group; the drawable is
 * never modified. Nothing touches the image until the engine has finished, so a kill
 * (GIMP's own progress-bar cancel) leaves the image as it was.
 */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <string.h>
#include "ttpo-common.h"
#include "ttpo-ui.h"
#include "ttpo-host.h"

static void query(void);
static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals, GimpParam **return_vals);

const GimpPlugInInfo PLUG_IN_INFO = {NULL, NULL, query, run};

MAIN()

static void query(void) {
    static const GimpParamDef args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1), RUN-WITH-LAST-VALS (2) }"},
        {GIMP_PDB_IMAGE, "image", "Input image"},
        {GIMP_PDB_DRAWABLE, "drawable", "Input layer"},
        {GIMP_PDB_STRING, "model-folder", "Model: a folder (diffusers layout) or a Hugging Face repo id (org/name); empty = "
         "$TTPO_MODEL_DIR, else the default model. Non-interactive calls never download."},
        {GIMP_PDB_INT32, "seed", "Job seed (>= 0)"},
        {GIMP_PDB_INT32, "steps", "Sampler steps of Stage I and Stage III (1..1000)"},
        {GIMP_PDB_STRING, "strengths", "img2img strengths of the candidates, comma-separated, e.g. \"0.1,0.2,0.3\""},
        {GIMP_PDB_INT32, "selection", "Candidate choice: 0 automatic, 1 the given indices"},
        {GIMP_PDB_INT32, "preferred", "Preferred candidate index (selection 1; 0 = the input)"},
        {GIMP_PDB_INT32, "dispreferred", "Dispreferred candidate index (selection 1)"},
        {GIMP_PDB_STRING, "restore", "Restoration network run before Stage I (\"rdn-x2\", \"realesrgan-x4\", ...: "
         "ttpo restore --help lists them); \"\" = none. The result is larger by its factor; a layer filling "
         "the canvas enlarges the canvas. Files from $TTPO_RESTORE_DIR, else ~/.local/share/ttpo/restore."},
        {GIMP_PDB_STRING, "metrics", "Stage II's metrics, comma-separated names or a preset (\"reproduction\" = "
         "musiq,maniqa,topiq, the learned metrics; \"classical\" = niqe,piqe); \"\" = the engine's default set. "
         "The learned metrics read pyiqa's checkpoints (docs/METRICS.md)."},
    };
    gimp_install_procedure(TTPO_PROC, "Restore the layer with TTPO (test-time preference optimization)",
                           "Makes candidates with a diffusion model, scores them with no-reference quality "
                           "metrics (or lets you pick), and refines toward the preferred one. The result is a "
                           "new layer above the original; a selection limits the change.",
                           "TTPO authors", "TTPO authors", "2026", "_TTPO...", "RGB*, GRAY*", GIMP_PLUGIN,
                           G_N_ELEMENTS(args), 0, args, NULL);
    gimp_plugin_menu_register(TTPO_PROC, "<Image>/Filters/Enhance");
}

/* host_read, host_write, HOST and process(): ttpo-host.h, shared with the other GIMP version. */


static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals, GimpParam **return_vals) {
    static GimpParam values[2];
    GimpRunMode mode = param[0].data.d_int32;
    GimpPDBStatusType status = GIMP_PDB_SUCCESS;
    gchar *message = NULL;
    TtpoParams p;
    (void)name;

    gegl_init(NULL, NULL);
    ttpo_params_defaults(&p);
    if (gimp_get_data_size(TTPO_PROC) == sizeof p) gimp_get_data(TTPO_PROC, &p);

    if (mode == GIMP_RUN_NONINTERACTIVE) {
        char *bad = NULL;
        if (nparams < 10 || nparams > 12) {
            status = GIMP_PDB_CALLING_ERROR;
            message = g_strdup("plug-in-ttpo-refine takes 12 arguments (10 or 11 without the last ones)");
        } else if ((nparams >= 11 && !ttpo_check_restore(param[10].data.d_string, &bad)) ||
                   (nparams == 12 && !ttpo_check_metrics(param[11].data.d_string, &bad))) {
            status = GIMP_PDB_CALLING_ERROR;
            message = g_strdup_printf("TTPO: %s", bad);
            g_free(bad);
        } else {
            const char *restore = nparams >= 11 && param[10].data.d_string ? param[10].data.d_string : "";
            const char *metrics = nparams == 12 && param[11].data.d_string ? param[11].data.d_string : "";
            g_strlcpy(p.restore, restore, sizeof p.restore);
            g_strlcpy(p.metrics, metrics, sizeof p.metrics);
            g_strlcpy(p.model_dir, param[3].data.d_string ? param[3].data.d_string : "", sizeof p.model_dir);
            p.seed = param[4].data.d_int32;
            p.steps = param[5].data.d_int32;
            g_strlcpy(p.strengths, param[6].data.d_string ? param[6].data.d_string : "", sizeof p.strengths);
            p.selection = param[7].data.d_int32;
            p.preferred = param[8].data.d_int32;
            p.dispreferred = param[9].data.d_int32;
            p.device = 0;
            if (p.seed < 0 || p.steps < 1 || p.steps > 1000 || p.selection < 0 || p.selection > 1 ||
                (p.selection == 1 && (p.preferred < 0 || p.dispreferred < 0 || p.preferred == p.dispreferred))) {
                status = GIMP_PDB_CALLING_ERROR;
                message = g_strdup("TTPO: seed must be >= 0, steps 1..1000, selection 0 or 1, and with "
                                   "selection 1 preferred and dispreferred must be different indices >= 0");
            }
        }
    } else if (mode == GIMP_RUN_INTERACTIVE) {
        gimp_ui_init("ttpo", FALSE);
        if (!ttpo_ui_settings(&p)) status = GIMP_PDB_CANCEL;
    }
    /* GIMP_RUN_WITH_LAST_VALS: p holds the last values (Filters > Repeat). */

    if (status == GIMP_PDB_SUCCESS) {
        status = process(param[1].data.d_image, param[2].data.d_drawable, &p, mode == GIMP_RUN_INTERACTIVE, &message);
        if (status == GIMP_PDB_SUCCESS) {
            if (mode != GIMP_RUN_NONINTERACTIVE) gimp_displays_flush();
            if (mode == GIMP_RUN_INTERACTIVE) gimp_set_data(TTPO_PROC, &p, sizeof p);
        } else if (status == GIMP_PDB_EXECUTION_ERROR && mode == GIMP_RUN_INTERACTIVE) {
            ttpo_ui_error(message);
        }
    }
    *nreturn_vals = 1;
    *return_vals = values;
    values[0].type = GIMP_PDB_STATUS;
    values[0].data.d_status = status;
    if (message && status != GIMP_PDB_SUCCESS) {
        static gchar *kept; /* must outlive run() */
        g_free(kept);
        kept = message;
        message = NULL;
        *nreturn_vals = 2;
        values[1].type = GIMP_PDB_STRING;
        values[1].data.d_string = kept;
    }
    g_free(message);
}
