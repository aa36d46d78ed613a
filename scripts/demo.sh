#!/usr/bin/env bash
# Quick start: install what Switchboard needs, build it, and run it on the built-in example.
# Creates scratch network namespaces (a node, a client, two backend pods), applies examples/ into
# the node's namespace, sends requests through the ClusterIP and the NodePort and prints which
# backend answered, shows that a Service without endpoints refuses, and shows `switchboard diff`.
# Nothing outside the scratch namespaces is touched; they are deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (network namespaces)" >&2; exit 2; }
bash scripts/install-deps.sh
swift build -c release --product switchboard 2>&1 | tail -n 1
sb=$(swift build -c release --show-bin-path)/switchboard

id=sbd$$
node=$id-node; client=$id-client; b1=$id-b1; b2=$id-b2
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ns in "$node" "$client" "$b1" "$b2"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
for ns in "$node" "$client" "$b1" "$b2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
# client <-> node: 10.200.0.0/24 (the node's InternalIP is 10.200.0.1)
ip link add "${id}c" netns "$client" type veth peer name c0 netns "$node"
ip -n "$client" link set "${id}c" name eth0
ip -n "$client" addr add 10.200.0.2/24 dev eth0; ip -n "$client" link set eth0 up
ip -n "$node" addr add 10.200.0.1/24 dev c0; ip -n "$node" link set c0 up
ip -n "$client" route add default via 10.200.0.1
# pods on a bridge in the node: 10.244.0.0/24
ip -n "$node" link add cbr0 type bridge; ip -n "$node" addr add 10.244.0.1/24 dev cbr0; ip -n "$node" link set cbr0 up
i=2
for ns in "$b1" "$b2"; do
  ip link add "${id}p$i" netns "$ns" type veth peer name "veth$i" netns "$node"
  ip -n "$ns" link set "${id}p$i" name eth0
  ip -n "$ns" addr add "10.244.0.$i/24" dev eth0; ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via 10.244.0.1
  ip -n "$node" link set "veth$i" master cbr0 up
  ip netns exec "$ns" socat TCP-LISTEN:8080,fork,reuseaddr SYSTEM:"echo answered by $ns" &
  servers+=($!)
  i=$((i + 1))
done
# a default route, so that traffic to service IPs reaches the forward path like on a real node
# (a veth whose peer discards what it receives: not every kernel has the dummy link type)
ip -n "$node" link add ext0 type veth peer name ext0p
ip -n "$node" link set ext0 arp off up; ip -n "$node" link set ext0p up
ip -n "$node" route add default dev ext0
sleep 0.5

echo "== switchboard apply (inside the node's namespace)"
ip netns exec "$node" "$sb" apply -f examples/ --hostname-override demo-node --cluster-cidr 10.244.0.0/16
echo "== requests from the client through ClusterIP 10.96.0.10:80 (Maglev: the same source port always hits the same backend)"
for port in 40001 40002 40003 40004 40001; do
  printf '  from source port %s: ' "$port"
  ip netns exec "$client" socat -T2 - TCP:10.96.0.10:80,sourceport=$port,reuseaddr </dev/null || echo "failed"
done
echo "== NodePort 10.200.0.1:30080"
printf '  '; ip netns exec "$client" socat -T2 - TCP:10.200.0.1:30080 </dev/null
echo "== a Service without endpoints (10.96.0.20:80) refuses"
printf '  '; ip netns exec "$client" socat -T2 - TCP:10.96.0.20:80 </dev/null 2>&1 | sed 's/.*E //' || true
echo "== switchboard diff (kernel vs input): equal after apply, exit code 0"
ip netns exec "$node" "$sb" diff -f examples/ --hostname-override demo-node --cluster-cidr 10.244.0.0/16 && echo "  no difference"
echo "== switchboard diff against an input where one backend is gone"
sed '/10.244.0.3/,+2d' examples/demo.yaml > "/tmp/$id-changed.yaml"
ip netns exec "$node" "$sb" diff -f "/tmp/$id-changed.yaml" --hostname-override demo-node --cluster-cidr 10.244.0.0/16 \
  | grep -E '^[-+]' | grep -v '^[-+][-+]' | head -n 12 || true
rm -f "/tmp/$id-changed.yaml"
