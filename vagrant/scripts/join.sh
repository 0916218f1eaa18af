#!/usr/bin/env bash
# Every node but the bootstrap node, as root: `installer join` with the join
# file the bootstrap node wrote, then kubectl for the vagrant user.
# Argument: this node's name in cluster.yaml.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || die "usage: join.sh NODE"
node=$1
join=/vagrant/.join

for f in "$node.join" "$node.key" installer admin.conf; do
	[[ -s $join/$f ]] || die "$join/$f is missing: bring the bootstrap node up first (vagrant up cp1), then vagrant provision $node"
done
install -D -m 0755 "$join/installer" "$FERRY_INSTALLER"
# The bundle comes from the bootstrap node's content service (verified
# against the keyring in the join file).
FERRY_CERTIFICATE_KEY=$(<"$join/$node.key") "$FERRY_INSTALLER" join --join-file "$join/$node.join" --node "$node"
# The join file holds a bootstrap token and the node's keys: not left lying around.
rm -f "$join/$node.join" "$join/$node.key"

setup_kubeconfig "$join/admin.conf"
rm -f "$join/admin.conf"
echo "node $node joined"
