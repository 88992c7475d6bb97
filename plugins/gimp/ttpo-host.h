/*
 * The image side of one run, written once for GIMP 2.10 and GIMP 3: read the selection's
 * pixels of a layer, write a result into a new layer above it (one undo group), and the
 * host table ttpo_process (ttpo-common.c) calls. Included by ttpo-gimp2.c and ttpo-gimp3.c
 * only (static functions): the two libgimp versions name the same calls alike but hand out
 * items as IDs (2.10) or objects (3), which the few macros below bridge, so the logic is
 * not kept twice.
 */
#ifndef TTPO_HOST_H
#define TTPO_HOST_H

#include <libgimp/gimp.h>
#include "ttpo-common.h"
#include "ttpo-ui.h"

#if GIMP_MAJOR_VERSION >= 3
typedef GimpImage *TtpoImage;
typedef GimpDrawable *TtpoDrawable;
typedef GimpLayer *TtpoLayer;
#define TTPO_ITEM(x) GIMP_ITEM(x)
#define TTPO_AS_DRAWABLE(x) GIMP_DRAWABLE(x)
#define TTPO_AS_LAYER(x) GIMP_LAYER(x)
#define TTPO_IS_LAYER(d) GIMP_IS_LAYER(d)
#else
typedef gint32 TtpoImage;
typedef gint32 TtpoDrawable;
typedef gint32 TtpoLayer;
#define TTPO_ITEM(x) (x)
#define TTPO_AS_DRAWABLE(x) (x)
#define TTPO_AS_LAYER(x) (x)
#define TTPO_IS_LAYER(d) gimp_item_is_layer(d)
#endif

typedef struct {
    TtpoImage image;
    TtpoDrawable drawable;
} Host;

static float *host_read(void *ctx, gint *x, gint *y, gint *w, gint *h, gchar **message) {
    Host *host = ctx;
    if (!TTPO_IS_LAYER(host->drawable) || gimp_item_is_group(TTPO_ITEM(host->drawable))) {
        *message = g_strdup("TTPO works on a layer: select one pixel layer (not a mask, channel or group).");
        return NULL;
    }
    if (!gimp_drawable_mask_intersect(host->drawable, x, y, w, h) || *w <= 0 || *h <= 0) {
        *message = g_strdup("The selection does not touch the layer: nothing to do.");
        return NULL;
    }
    float *in = g_malloc((gsize)*w * *h * 4 * sizeof(float));
    GeglBuffer *src = gimp_drawable_get_buffer(host->drawable);
    gegl_buffer_get(src, GEGL_RECTANGLE(*x, *y, *w, *h), 1.0, babl_format("R'G'B'A float"), in,
                    GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(src);
    return in;
}

static void host_write(void *ctx, const float *rgba, gint x, gint y, gint w, gint h, gint32 seed) {
    Host *host = ctx;
    gimp_image_undo_group_start(host->image);
    TtpoLayer layer = gimp_layer_new_from_drawable(host->drawable, host->image);
    gchar *name = g_strdup_printf("TTPO (seed %d)", seed);
    gimp_item_set_name(TTPO_ITEM(layer), name);
    g_free(name);
    gimp_image_insert_layer(host->image, layer, TTPO_AS_LAYER(gimp_item_get_parent(TTPO_ITEM(host->drawable))),
                            gimp_image_get_item_position(host->image, TTPO_ITEM(host->drawable)));
    /* The shadow buffer merged with the selection as mask: a feathered or partial
       selection limits the change, outside it the copy keeps the original pixels. */
    TtpoDrawable ld = TTPO_AS_DRAWABLE(layer);
    GeglBuffer *shadow = gimp_drawable_get_shadow_buffer(ld);
    GeglBuffer *copy = gimp_drawable_get_buffer(ld);
    gegl_buffer_copy(copy, NULL, GEGL_ABYSS_NONE, shadow, NULL); /* exact pixels outside the result */
    g_object_unref(copy);
    gegl_buffer_set(shadow, GEGL_RECTANGLE(x, y, w, h), 0, babl_format("R'G'B'A float"), rgba, GEGL_AUTO_ROWSTRIDE);
    g_object_unref(shadow);
    gimp_drawable_merge_shadow(ld, TRUE);
    gimp_drawable_update(ld, x, y, w, h);
    gimp_image_undo_group_end(host->image);
}

static const TtpoHost HOST = {host_read,           host_write,         gimp_progress_init, gimp_progress_set_text,
                              gimp_progress_update, gimp_progress_end, ttpo_ui_run_phase,  ttpo_ui_pick,
                              ttpo_ui_download};

/* Runs the engine on the selection's bounds of `drawable` and puts the result into a new
   layer. Returns a status; on failure *message (g_free) says why. */
static GimpPDBStatusType process(TtpoImage image, TtpoDrawable drawable, TtpoParams *p, gboolean interactive,
                                 gchar **message) {
    Host host = {image, drawable};
    switch (ttpo_process(&HOST, &host, p, interactive, message)) {
    case TTPO_PROCESS_OK: return GIMP_PDB_SUCCESS;
    case TTPO_PROCESS_CANCELLED: return GIMP_PDB_CANCEL;
    default: return GIMP_PDB_EXECUTION_ERROR;
    }
}

#endif /* TTPO_HOST_H */
