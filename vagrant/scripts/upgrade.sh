#!/usr/bin/env bash
# The bootstrap node, as root (make vagrant-upgrade): `installer upgrade`
# with a new bundle ISO uploaded to this VM, using the new bundle's
# installer when the ISO can be mounted.
# Argument: the uploaded ISO (moved into /var/lib/ferry).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || die "usage: upgrade.sh NEW.iso"
[[ -f $1 ]] || die "$1: no such file (make vagrant-upgrade uploads it)"
[[ -x $FERRY_INSTALLER ]] || die "$FERRY_INSTALLER is missing: is this the bootstrap node, bootstrapped?"
iso=/var/lib/ferry/incoming-upgrade.iso
mv -f "$1" "$iso"

if ! iso_installer "$iso"; then
	echo "upgrade.sh: cannot take /installer from $iso; upgrading with the installed one" >&2
fi
"$FERRY_INSTALLER" upgrade --iso "$iso"
rm -f "$iso"
# Nodes joined from now on use the new installer.
if [[ -d /vagrant/.join ]]; then
	install -o vagrant -g vagrant -m 0755 "$FERRY_INSTALLER" /vagrant/.join/installer
fi
echo "upgrade done"
