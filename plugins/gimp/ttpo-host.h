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
#define TTPO_IMAGE_WIDTH(i) gimp_image_get_width(i)
#define TTPO_IMAGE_HEIGHT(i) gimp_image_get_height(i)
#define TTPO_DRAWABLE_WIDTH(d) gimp_drawable_get_width(d)
#define TTPO_DRAWABLE_HEIGHT(d) gimp_drawable_get_height(d)
#define TTPO_DRAWABLE_OFFSETS(d, x, y) gimp_drawable_get_offsets(d, x, y)
#else
typedef gint32 TtpoImage;
typedef gint32 TtpoDrawable;
typedef gint32 TtpoLayer;
#define TTPO_ITEM(x) (x)
#define TTPO_AS_DRAWABLE(x) (x)
#define TTPO_AS_LAYER(x) (x)
#define TTPO_IS_LAYER(d) gimp_item_is_layer(d)
#define TTPO_IMAGE_WIDTH(i) gimp_image_width(i)
#define TTPO_IMAGE_HEIGHT(i) gimp_image_height(i)
#define TTPO_DRAWABLE_WIDTH(d) gimp_drawable_width(d)
#define TTPO_DRAWABLE_HEIGHT(d) gimp_drawable_height(d)
#define TTPO_DRAWABLE_OFFSETS(d, x, y) gimp_drawable_offsets(d, x, y)
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

/* A restored result (ow x oh, larger than the w x h region at x, y read from the layer)
   goes into a new layer of its own size, placed where the region was with every coordinate
   scaled: when the layer fills the canvas, the canvas is enlarged by the same factor first
   (other layers keep their size and place at the top left); otherwise the canvas stays and
   the new layer starts at the region's scaled position (Image > Fit Canvas to Layers shows
   all of it). The selection only chose the region: its shape is not applied to the larger
   result. One undo group, so one Undo removes the layer and restores the canvas. */
static void host_write_scaled(Host *host, const float *rgba, gint x, gint y, gint w, gint h, gint ow, gint oh,
                              const gchar *name) {
    gint lx = 0, ly = 0;
    TTPO_DRAWABLE_OFFSETS(host->drawable, &lx, &ly);
    gint iw = TTPO_IMAGE_WIDTH(host->image), ih = TTPO_IMAGE_HEIGHT(host->image);
    gint sx = ow / MAX(w, 1), sy = oh / MAX(h, 1);
    gboolean fills = lx == 0 && ly == 0 && TTPO_DRAWABLE_WIDTH(host->drawable) == iw &&
                     TTPO_DRAWABLE_HEIGHT(host->drawable) == ih;
    if (fills) gimp_image_resize(host->image, iw * sx, ih * sy, 0, 0);
    TtpoLayer layer = gimp_layer_new(host->image, name, ow, oh, gimp_drawable_type(host->drawable), 100.0,
                                     GIMP_LAYER_MODE_NORMAL);
    gimp_image_insert_layer(host->image, layer, TTPO_AS_LAYER(gimp_item_get_parent(TTPO_ITEM(host->drawable))),
                            gimp_image_get_item_position(host->image, TTPO_ITEM(host->drawable)));
    gimp_layer_set_offsets(layer, (lx + x) * sx, (ly + y) * sy);
    /* Straight into the new layer's buffer: no shadow merge, which would mask it with the
       selection at the old scale. */
    TtpoDrawable ld = TTPO_AS_DRAWABLE(layer);
    GeglBuffer *buf = gimp_drawable_get_buffer(ld);
    gegl_buffer_set(buf, GEGL_RECTANGLE(0, 0, ow, oh), 0, babl_format("R'G'B'A float"), rgba, GEGL_AUTO_ROWSTRIDE);
    g_object_unref(buf);
    gimp_drawable_update(ld, 0, 0, ow, oh);
}

static void host_write(void *ctx, const float *rgba, gint x, gint y, gint w, gint h, gint ow, gint oh,
                       gint32 seed) {
    Host *host = ctx;
    if (ow != w || oh != h) {
        gchar *name = g_strdup_printf("TTPO (seed %d, %dx)", seed, ow / MAX(w, 1));
        gimp_image_undo_group_start(host->image);
        host_write_scaled(host, rgba, x, y, w, h, ow, oh, name);
        gimp_image_undo_group_end(host->image);
        g_free(name);
        return;
    }
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
