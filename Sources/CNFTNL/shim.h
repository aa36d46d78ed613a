#ifndef SWITCHBOARD_CNFTNL_SHIM_H
#define SWITCHBOARD_CNFTNL_SHIM_H
/* libnftnl and libmnl: nf_tables netlink messages, for bulk set element writes (NetlinkSetElements). */
#include <stdint.h>
#include <sys/socket.h>
/* glibc first: <linux/libc-compat.h> then leaves out the uapi copies of in_addr, sockaddr_in6, ... */
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#endif
