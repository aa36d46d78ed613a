#!/bin/sh
# Regenerates the kernel listings next to each *.nft script in this folder: for X.nft, loads it into
# a scratch network namespace and writes X.txt (`nft list ruleset`) and X.json (`nft -j list ruleset`).
# Needs root, iproute2 and nft; never touches the host's ruleset.
#   sudo Tests/NFTListingTests/Fixtures/capture.sh [X.nft ...]
# roundtrip.nft is written by the NFTListing tests (JSONListingTests, with SWITCHBOARD_UPDATE_FIXTURES=1).
set -eu
cd "$(dirname "$0")"
[ $# -gt 0 ] || set -- *.nft
for script in "$@"; do
	base=${script%.nft}
	ns=sbt-json-capture-$$
	ip netns add "$ns"
	trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
	ip netns exec "$ns" nft -f "$script"
	ip netns exec "$ns" nft list ruleset > "$base.txt"
	ip netns exec "$ns" nft -j list ruleset > "$base.json"
	ip netns delete "$ns"
	trap - EXIT
	echo "captured $base.txt $base.json"
done
