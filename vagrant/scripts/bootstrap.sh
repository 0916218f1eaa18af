#!/usr/bin/env bash
# The bootstrap node, as root: copy the bundle ISO off the DVD drive,
# `installer bootstrap`, then leave in /vagrant/.join what the other nodes
# need (join file, installer, kubeconfig; the Vagrantfile brings it to the
# host) and give the vagrant user kubectl. Safe to run again.
# Argument: this node's name in cluster.yaml.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || die "usage: bootstrap.sh NODE"
node=$1
iso=/var/lib/ferry/incoming.iso
join=/vagrant/.join

for f in /vagrant/cluster.yaml /vagrant/release.pub.asc; do
	[[ -s $f ]] || die "$f is missing: the Vagrantfile uploads it (vagrant provision $node)"
done
# The root CA passphrase: readable by root only, not left in /vagrant.
if [[ -s /vagrant/.secrets/root-passphrase ]]; then
	install -d -m 0700 /root/.ferry
	install -m 0600 /vagrant/.secrets/root-passphrase /root/.ferry/root-passphrase
	rm -rf /vagrant/.secrets
fi
[[ -s /root/.ferry/root-passphrase ]] || die "no root CA passphrase: the Vagrantfile uploads vagrant/.secrets/root-passphrase (vagrant provision $node)"

# The DVD drive: the first optical drive with a medium in it.
dvd=${FERRY_DVD:-}
if [[ -z $dvd ]]; then
	for d in /dev/sr*; do
		[[ -b $d ]] || continue
		if [[ $(blockdev --getsize64 "$d" 2>/dev/null || echo 0) -gt 0 ]]; then
			dvd=$d
			break
		fi
	done
fi
[[ -n $dvd && -b $dvd ]] || die "no DVD drive with a medium (lsblk shows none of type rom): is the ISO attached to this VM?"

# The installer reads the ISO in user space from a regular file: copy the
# medium once (again only when its size differs from the copy's).
size=$(blockdev --getsize64 "$dvd")
if [[ ! -f $iso || $(stat -c %s "$iso") != "$size" ]]; then
	echo "copying the bundle from $dvd ($size bytes) to $iso"
	install -d -m 0755 "$(dirname "$iso")"
	dd if="$dvd" of="$iso.tmp" bs=4M conv=fsync status=none
	mv -f "$iso.tmp" "$iso"
fi

if [[ -s /vagrant/installer ]]; then
	install -D -m 0755 /vagrant/installer "$FERRY_INSTALLER"
elif ! iso_installer "$iso"; then
	die "cannot take /installer from the ISO (no iso9660 driver in this box's kernel?): set FERRY_INSTALLER=path/to/installer on the host and run vagrant provision $node"
fi

"$FERRY_INSTALLER" bootstrap --iso "$iso" --config /vagrant/cluster.yaml --keyring /vagrant/release.pub.asc \
	--root-passphrase-file /root/.ferry/root-passphrase --node "$node"

install -d -o vagrant -g vagrant -m 0700 "$join"
# One join file per other node of cluster.yaml: a bootstrap token and the
# node's own certificates (made again at each provision: they expire).
awk '$1 == "-" && $2 == "name:" {print $3}' /vagrant/cluster.yaml | while read -r other; do
	[[ $other == "$node" ]] && continue
	# The file's key (printed): it authenticates the file. Beside it here,
	# where admin.conf goes too; in a real cluster it travels apart.
	key=$("$FERRY_INSTALLER" token create --node "$other" --out "$join/$other.join" | awk '/^certificate key/ {print $NF}')
	[[ ${#key} == 64 ]] || die "installer token create --node $other printed no certificate key"
	(umask 077 && printf '%s\n' "$key" >"$join/$other.key")
	chown vagrant:vagrant "$join/$other.join" "$join/$other.key"
done
install -o vagrant -g vagrant -m 0600 /etc/kubernetes/admin.conf "$join/admin.conf"
install -o vagrant -g vagrant -m 0755 "$FERRY_INSTALLER" "$join/installer"

setup_kubeconfig /etc/kubernetes/admin.conf
echo "bootstrap node $node is up; the join files are in $join"
