# shellcheck shell=bash
# Shared by the provisioning scripts (sourced, never run).

# Where the provisioning keeps its copy of the installer binary: outside
# PATH, so it never shadows the one the bundle's ferry-installer RPM installs.
FERRY_INSTALLER=/usr/local/libexec/ferry/installer
export FERRY_INSTALLER

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "run as root (Vagrant's shell provisioner does)"

# iso_installer ISO_OR_DEVICE: copies /installer from a bundle ISO (a file or
# the DVD drive) to $FERRY_INSTALLER; returns non-zero when it cannot be
# mounted (a box kernel without the iso9660 driver).
iso_installer() {
	local src=$1 mnt opts=ro
	[[ -f $src ]] && opts=ro,loop
	mnt=$(mktemp -d /run/ferry-iso.XXXXXX)
	if ! mount -t iso9660 -o "$opts" "$src" "$mnt" 2>/dev/null; then
		rmdir "$mnt"
		return 1
	fi
	local rc=0
	if [[ -f $mnt/installer ]]; then
		install -D -m 0755 "$mnt/installer" "$FERRY_INSTALLER.new" && mv -f "$FERRY_INSTALLER.new" "$FERRY_INSTALLER" || rc=$?
	else
		echo "${0##*/}: $src has no /installer (a bundle built without --installer)" >&2
		rc=1
	fi
	umount "$mnt"
	rmdir "$mnt"
	return "$rc"
}

# setup_kubeconfig SRC: kubectl for the vagrant user (KUBECONFIG set at
# login), then checks that it reaches the API server.
setup_kubeconfig() {
	local src=$1 home
	[[ -s $src ]] || die "no kubeconfig at $src"
	command -v kubectl >/dev/null || die "kubectl is not installed on this node (the bundle's kubectl RPM)"
	home=$(getent passwd vagrant | cut -d: -f6)
	[[ -n $home ]] || die "no vagrant user"
	install -d -o vagrant -g vagrant -m 0700 "$home/.kube"
	install -o vagrant -g vagrant -m 0600 "$src" "$home/.kube/config"
	cat >/etc/profile.d/ferry-kubeconfig.sh <<'PROFILE'
# Written by Ferry's Vagrant provisioning: kubectl for the vagrant user.
if [ "$(id -un)" = vagrant ]; then
	export KUBECONFIG="$HOME/.kube/config"
fi
PROFILE
	runuser -u vagrant -- env KUBECONFIG="$home/.kube/config" kubectl get nodes -o wide ||
		die "kubectl get nodes as the vagrant user failed with $src"
}
