#ifndef SWITCHBOARD_CNFTNL_SHIM_H
#define SWITCHBOARD_CNFTNL_SHIM_H
/* libnftnl and libmnl: nf_tables netlink messages, for bulk set element writes (NetlinkSetElements). */
#include <stdint.h>
#include <sys/socket.h>
/* glibc first: <linux/libc-compat.h> then leaves out the uapi copies of in_addr, sockaddr_in6, ... */
#include <netinet/in.h>
#include <linux/netlink.h>
/* Not <linux/netfilter.h> nor <linux/netfilter/nfnetlink.h>: libnetfilter_conntrack (CNetfilterConntrack, in
   the same Swift module) brings libnfnetlink's own copies of them, and two Clang modules may not define
   `nf_inet_addr` or `enum nfnetlink_groups` differently. nf_tables.h needs neither. */
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>

/* The NFPROTO_* values of <linux/netfilter.h> (kernel ABI) that a table's family maps to. */
enum {
    SWITCHBOARD_NFPROTO_INET = 1,
    SWITCHBOARD_NFPROTO_IPV4 = 2,
    SWITCHBOARD_NFPROTO_IPV6 = 10,
};
#endif
