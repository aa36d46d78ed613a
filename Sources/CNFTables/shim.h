#ifndef SWITCHBOARD_CNFTABLES_SHIM_H
#define SWITCHBOARD_CNFTABLES_SHIM_H
#include <nftables/libnftables.h>
#endif
