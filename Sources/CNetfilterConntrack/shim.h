#ifndef SWITCHBOARD_CNETFILTERCONNTRACK_SHIM_H
#define SWITCHBOARD_CNETFILTERCONNTRACK_SHIM_H
#include <stdint.h>
#include <sys/socket.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

/* `CONNTRACK` is a macro of libnfnetlink's headers; Swift sees a function more reliably. */
static inline struct nfct_handle *switchboard_nfct_open(void) { return nfct_open(CONNTRACK, 0); }
#endif
