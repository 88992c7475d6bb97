/* Variadic OpenFX host functions (paramGetValue & co., message suite) for the Rust test host. */
#include <stdarg.h>
#include <stdio.h>

typedef int OfxStatus;

struct ofxshim_callbacks {
    /* 0: int-like (int, bool, choice), 1: double, 2: string, -1: bad handle */
    int (*kind)(void *param);
    OfxStatus (*get_int)(void *param, double time, int *v);
    OfxStatus (*get_double)(void *param, double time, double *v);
    OfxStatus (*get_string)(void *param, double time, char **v);
    OfxStatus (*set_int)(void *param, int v);
    OfxStatus (*set_double)(void *param, double v);
    OfxStatus (*set_string)(void *param, const char *v);
    OfxStatus (*message)(void *handle, const char *type, const char *id, const char *text, int persistent);
};

static struct ofxshim_callbacks CB;

void ofxshim_init(const struct ofxshim_callbacks *cb) { CB = *cb; }

static OfxStatus get_va(void *p, double t, va_list *ap) {
    switch (CB.kind(p)) {
    case 0: return CB.get_int(p, t, va_arg(*ap, int *));
    case 1: return CB.get_double(p, t, va_arg(*ap, double *));
    case 2: return CB.get_string(p, t, va_arg(*ap, char **));
    default: return 9; /* kOfxStatErrBadHandle */
    }
}

static OfxStatus set_va(void *p, va_list *ap) {
    switch (CB.kind(p)) {
    case 0: return CB.set_int(p, va_arg(*ap, int));
    case 1: return CB.set_double(p, va_arg(*ap, double));
    case 2: return CB.set_string(p, va_arg(*ap, const char *));
    default: return 9;
    }
}

OfxStatus ofxshim_param_get_value(void *p, ...) {
    va_list ap; va_start(ap, p); OfxStatus r = get_va(p, 0.0, &ap); va_end(ap); return r;
}
OfxStatus ofxshim_param_get_value_at_time(void *p, double t, ...) {
    va_list ap; va_start(ap, t); OfxStatus r = get_va(p, t, &ap); va_end(ap); return r;
}
OfxStatus ofxshim_param_set_value(void *p, ...) {
    va_list ap; va_start(ap, p); OfxStatus r = set_va(p, &ap); va_end(ap); return r;
}
OfxStatus ofxshim_param_set_value_at_time(void *p, double t, ...) {
    (void)t; va_list ap; va_start(ap, t); OfxStatus r = set_va(p, &ap); va_end(ap); return r;
}
OfxStatus ofxshim_param_unsupported(void *p, double t, ...) { (void)p; (void)t; return 5; }
OfxStatus ofxshim_param_unsupported2(void *p, double t1, double t2, ...) { (void)p; (void)t1; (void)t2; return 5; }

static OfxStatus msg(int persistent, void *h, const char *type, const char *id, const char *fmt, va_list *ap) {
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt ? fmt : "", *ap);
    return CB.message(h, type, id, buf, persistent);
}
OfxStatus ofxshim_message(void *h, const char *type, const char *id, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); OfxStatus r = msg(0, h, type, id, fmt, &ap); va_end(ap); return r;
}
OfxStatus ofxshim_set_persistent_message(void *h, const char *type, const char *id, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); OfxStatus r = msg(1, h, type, id, fmt, &ap); va_end(ap); return r;
}
