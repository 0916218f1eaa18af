#!/usr/bin/env bash
# Every node, as root, before bootstrap or join: /etc/hosts for every node
# and the API name (no DNS needed), swap off (the kubelet wants none).
# Arguments: lines "IP NAME [NAME…]" for /etc/hosts.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# > 0)) || die "usage: node.sh 'IP NAME…'…"
fqdn=$(hostname -f 2>/dev/null || hostname)
short=${fqdn%%.*}

# Drop the loopback lines Vagrant writes for the hostname (the kubelet and
# etcd would resolve the node to 127.0.x.1), and the block of a previous run.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
awk -v fqdn="$fqdn" -v short="$short" '
	/^# BEGIN ferry-vagrant/ { skip = 1; next }
	/^# END ferry-vagrant/ { skip = 0; next }
	skip { next }
	$1 ~ /^127\./ || $1 == "::1" {
		for (i = 2; i <= NF; i++) if ($i == fqdn || $i == short) next
	}
	{ print }
' /etc/hosts >"$tmp"
{
	echo "# BEGIN ferry-vagrant (written by vagrant/scripts/node.sh)"
	printf '%s\n' "$@"
	echo "# END ferry-vagrant"
} >>"$tmp"
# In place (keeps the file's owner, mode and SELinux label).
cat "$tmp" >/etc/hosts

getent hosts "$fqdn" >/dev/null || die "$fqdn is not in /etc/hosts: is this VM one of the settings' nodes?"
ip=$(getent hosts "$fqdn" | awk '{print $1; exit}')
ip -o addr show | grep -qw "inet $ip" ||
	die "$fqdn should have $ip on the private network, but no interface has it (ip -o addr)"

swapoff -a
sed -r '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#ferry-vagrant# /' /etc/fstab >"$tmp"
cmp -s "$tmp" /etc/fstab || cat "$tmp" >/etc/fstab
echo "node $fqdn: $ip, /etc/hosts has every node, swap off"
