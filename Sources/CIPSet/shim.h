#ifndef SWITCHBOARD_CIPSET_SHIM_H
#define SWITCHBOARD_CIPSET_SHIM_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libipset/ipset.h>
#include <libipset/data.h>
#include <libipset/types.h>

/* libipset reports through printf-style variadic callbacks, which Swift cannot implement, and its
 * default error callbacks call exit(). These three collect everything into one buffer struct that
 * the Swift owner (LibIPSet) allocates, reads and resets; nothing here exits or prints. */

typedef struct sb_ipset_buffers {
    char *output;        /* listing output, NUL-terminated; grown with realloc */
    size_t output_len;
    size_t output_cap;
    int failed;          /* an error was reported since the last reset */
    char error[2048];    /* the first error's text */
    char warning[1024];  /* the last warning's text */
} sb_ipset_buffers;

static inline void sb_ipset_vappend(sb_ipset_buffers *b, const char *fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int needed = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (needed <= 0) return;
    size_t want = b->output_len + (size_t)needed + 1;
    if (want > b->output_cap) {
        size_t cap = b->output_cap ? b->output_cap : 4096;
        while (cap < want) cap *= 2;
        char *grown = (char *)realloc(b->output, cap);
        if (!grown) return;
        b->output = grown;
        b->output_cap = cap;
    }
    vsnprintf(b->output + b->output_len, (size_t)needed + 1, fmt, args);
    b->output_len += (size_t)needed;
}

static inline int sb_ipset_print_out(struct ipset_session *session, void *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int sb_ipset_print_out(struct ipset_session *session, void *p, const char *fmt, ...) {
    (void)session;
    va_list args;
    va_start(args, fmt);
    sb_ipset_vappend((sb_ipset_buffers *)p, fmt, args);
    va_end(args);
    return 0;
}

static inline int sb_ipset_custom_error(struct ipset *ipset, void *p, int status, const char *msg, ...)
    __attribute__((format(printf, 4, 5)));
static inline int sb_ipset_custom_error(struct ipset *ipset, void *p, int status, const char *msg, ...) {
    sb_ipset_buffers *b = (sb_ipset_buffers *)p;
    if (status && msg && !b->failed) {
        va_list args;
        va_start(args, msg);
        vsnprintf(b->error, sizeof(b->error), msg, args);
        va_end(args);
    }
    if (status) b->failed = 1;
    struct ipset_session *session = ipset_session(ipset);
    if (session) ipset_session_report_reset(session);
    return -1;
}

static inline int sb_ipset_standard_error(struct ipset *ipset, void *p) {
    sb_ipset_buffers *b = (sb_ipset_buffers *)p;
    struct ipset_session *session = ipset_session(ipset);
    enum ipset_err_type type = ipset_session_report_type(session);
    const char *msg = ipset_session_report_msg(session);
    if (type == IPSET_WARNING) {
        snprintf(b->warning, sizeof(b->warning), "%s", msg ? msg : "");
    } else if (type != IPSET_NO_ERROR) {
        if (!b->failed) snprintf(b->error, sizeof(b->error), "%s", msg ? msg : "");
        b->failed = 1;
    }
    ipset_session_report_reset(session);
    return -1;
}

/* Installs the collecting callbacks on `ipset`. */
static inline int sb_ipset_install(struct ipset *ipset, sb_ipset_buffers *b) {
    return ipset_custom_printf(ipset, sb_ipset_custom_error, sb_ipset_standard_error, sb_ipset_print_out, b);
}

/* Clears the buffers (keeps the output allocation) and the session's leftover command data. */
static inline void sb_ipset_reset(struct ipset *ipset, sb_ipset_buffers *b) {
    b->output_len = 0;
    if (b->output) b->output[0] = '\0';
    b->failed = 0;
    b->error[0] = '\0';
    b->warning[0] = '\0';
    struct ipset_session *session = ipset_session(ipset);
    if (session) {
        ipset_session_report_reset(session);
        ipset_data_reset(ipset_session_data(session));
        ipset_envopt_unset(session, IPSET_ENV_LIST_HEADER);
        ipset_envopt_unset(session, IPSET_ENV_LIST_SETNAME);
    }
}

#endif
