#!/usr/bin/env bash
# Benchmark: the builder's upstream-content path (`builder lock`, then
# `builder build` downloading through its cache) against the usual pipeline
# that gets the same content to disk, on the same lock, from the same local
# servers:
#
#   upstream  nginx serving a signed yum repository (bench/mkupstream: RPMS
#             RPMs with a dependency tree, RSA 4096 signatures by gpg,
#             createrepo_c, repomd.xml.asc) and distribution/distribution
#             v3 serving a control plane's worth of images; both over TLS on
#             127.0.0.1 with one throwaway CA
#   ferry     bin/builder lock (cold: empty cache; warm: its metadata
#             cached), then bin/builder build --cache-dir C: the fetch +
#             compose phases (from --json) are the download, and the whole
#             build (repodata, manifest, signature, ISO, self-check) is
#             reported too
#   pipeline  dnf download --resolve (gpgcheck=1, repo_gpgcheck=1; dnf
#             download does not check package signatures itself, so
#             rpmkeys --checksig follows) + skopeo copy of every image by
#             its locked digest into one OCI layout
#
# Cold: empty caches (Ferry's --cache-dir; dnf's cache, destdir and
# rpmdb, skopeo's layout). Warm: the same command again on what the cold
# run left. The server side stays in the page cache throughout. Each
# variant runs RUNS times, alternating, and the median is reported. Before
# measuring, one pass checks that both sides got the same bytes: the RPMs'
# sha256 and the image digests equal the lock's, and the lock's packages
# are the dependency closure the generator planned. The figures go to
# docs/performance.md by hand, with the machine and its load.
#
# Variables: RUNS (5), RPMS (200), SCALE (1: multiplies every RPM and layer
# size), BENCH_DIR (_bench), BENCH_CACHE (/var/cache/ferry-bench: the
# registry binary), REGISTRY_VERSION (v3.1.2), BUILDER (bin/builder),
# MAX_LOAD (wait, up to LOAD_WAIT seconds (1800), for the 1-minute load
# average to fall below it before measuring), KEEP_WORK (keep the run
# directory under $BENCH_DIR/upstream).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${BENCH_DIR:-_bench}
CACHE=${BENCH_CACHE:-/var/cache/ferry-bench}
RUNS=${RUNS:-5}
RPMS=${RPMS:-200} SCALE=${SCALE:-1}
REGISTRY_VERSION=${REGISTRY_VERSION:-v3.1.2}
BUILDER=${BUILDER:-bin/builder}
LOAD_WAIT=${LOAD_WAIT:-1800}
export CGO_ENABLED=0
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)}

die() { echo "bench-upstream: $*" >&2; exit 1; }
for prog in go skopeo nginx dnf rpmkeys createrepo_c gpg gpgconf curl bc du sha256sum; do
  command -v $prog >/dev/null || die "$prog is missing (make deps; apt-get install bc)"
done
dnf download --help >/dev/null 2>&1 || die "dnf has no download command (apt-get install dnf-plugins-core)"
[ -x "$BUILDER" ] || die "run make build first"

mkdir -p "$ROOT/upstream"
ROOT=$(realpath "$ROOT")
KEY=$RPMS-$SCALE
go build -o "$ROOT/upstream/mkupstream" ./bench/mkupstream
MK=$ROOT/upstream/mkupstream

IN=$ROOT/upstream/input-$KEY
if [ ! -f "$IN/.done" ]; then
  echo "generating input: $RPMS RPMs, images at scale $SCALE"
  "$MK" input -dir "$IN" -rpms "$RPMS" -scale "$SCALE"
  touch "$IN/.done"
fi

# The reference registry, built once outside this module (as bench/serve.sh
# does), or taken from the test cache of images/registry/distributiontest.
REGISTRY=$CACHE/bin/registry-$REGISTRY_VERSION
TESTBIN=${FERRY_TEST_CACHE:-$HOME/.cache/ferry-test}/distribution-registry/$REGISTRY_VERSION-linux-amd64/registry
if [ ! -x "$REGISTRY" ] && [ -x "$TESTBIN" ]; then REGISTRY=$TESTBIN; fi
if [ ! -x "$REGISTRY" ]; then
  echo "building distribution/distribution $REGISTRY_VERSION into $CACHE/bin"
  mkdir -p "$CACHE/bin"
  tmp=$(mktemp -d)
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION")
  mv "$tmp/registry" "$REGISTRY"
  rm -rf "$tmp"
fi

WORK=$(mktemp -d -p "$ROOT/upstream" run.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_agents "$WORK"
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
# dnf's repo_gpgcheck starts a gpg-agent per keyring it keeps in its cache.
stop_agents() {
  local ring
  for ring in "$1"/pipe*/cache/*/pubring; do
    [ -d "$ring" ] && gpgconf --homedir "$ring" --kill gpg-agent 2>/dev/null || true
  done
}
trap cleanup EXIT

PKI=$WORK/pki
"$MK" pki -dir "$PKI"
CERTS=$WORK/certs.d
mkdir -p "$CERTS" && cp "$PKI/ca.crt" "$CERTS/"

free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port"
}
wait_ready() { # url what
  for _ in $(seq 600); do
    curl -sf --cacert "$PKI/ca.crt" -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "$2 did not become ready"
}

# The yum mirror: nginx, HTTP/1.1 over TLS, sendfile (no kTLS here, so it
# copies through OpenSSL), 2 workers.
NP=$(free_port)
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  types { application/xml xml; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NP ssl;
    ssl_certificate $PKI/server.crt;
    ssl_certificate_key $PKI/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /el9/ { alias $IN/repo/; }
  }
}
EOF
nginx -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=("$!")
REPO_URL=https://127.0.0.1:$NP/el9/
wait_ready "${REPO_URL}repodata/repomd.xml" nginx

# The registry: filesystem storage, loaded once per input by skopeo with
# digests preserved, and kept for the next invocations.
RP=$(free_port)
REGDATA=$ROOT/upstream/registry-$KEY
if [ ! -f "$REGDATA.done" ] || [ "$IN/.done" -nt "$REGDATA.done" ]; then rm -rf "$REGDATA" "$REGDATA.done"; fi
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGDATA
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$RP
  secret: ferry-bench-not-secret
  tls:
    certificate: $PKI/server.crt
    key: $PKI/server.key
EOF
OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true "$REGISTRY" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=("$!")
wait_ready "https://127.0.0.1:$RP/v2/" "the registry"
REG=127.0.0.1:$RP
if [ ! -f "$REGDATA.done" ]; then
  echo "loading the registry with skopeo"
  while read -r ref; do
    skopeo copy -q --preserve-digests --dest-cert-dir "$CERTS" "oci:$IN/layout:bench/$ref" "docker://$REG/bench/$ref" >/dev/null
  done <"$IN/images"
  touch "$REGDATA.done"
fi

# The spec: the packages by name, the images by tag.
SPEC=$WORK/spec
mkdir -p "$SPEC"
cp "$IN/RPM-GPG-KEY" "$PKI/ca.crt" "$SPEC/"
{
  printf 'apiVersion: ferry.dev/v1alpha1\nkind: Bundle\nmetadata:\n  name: upstream-bench\n  version: 1.0.0\nspec:\n'
  printf '  repositories:\n    - name: el9-bench\n      baseurl: %s\n      gpgkey: RPM-GPG-KEY\n      caFile: ca.crt\n' "$REPO_URL"
  printf '  packages:\n    - repo: upstream\n      names: [%s]\n' "$(paste -sd, "$IN/names" | sed 's/,/, /g')"
  printf '  images:\n'
  while read -r ref; do
    printf '    - source: docker://%s/bench/%s\n      name: registry.example.com/bench/%s\n' "$REG" "$ref" "$ref"
  done <"$IN/images"
} >"$SPEC/bundle.yaml"

seconds_since() { echo "$(date +%s.%N) - $1" | bc; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
phases() { # json name...: the sum of the phases' seconds from builder build --json
  local f=$1 p; shift
  for p; do
    grep -A1 "\"phase\": \"$p\"" "$f" | grep -o '"seconds": [0-9.e+-]*' | awk '{print $2}'
  done | awk '{s += $1} END {printf "%.3f\n", s}'
}
bytes() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
mb() { echo "$1 / 1000000" | bc -l | xargs printf '%.1f'; }

# builder lock: cold with an empty cache (repository metadata), warm with
# the cache the cold one left. The last lock stays.
lock() { # cold|warm
  [ "$1" = warm ] || rm -rf "$WORK/lockcache"
  "$BUILDER" --log-level warn lock --spec "$SPEC/bundle.yaml" --cache-dir "$WORK/lockcache" --cert-dir "$CERTS" >/dev/null
}

FC=$WORK/ferry-cache
ferry() { # out.json
  rm -f "$WORK/ferry.iso"
  "$BUILDER" --log-level warn build --spec "$SPEC/bundle.yaml" --output "$WORK/ferry.iso" \
    --signing-key "$IN/release.key.asc" --cache-dir "$FC" --cert-dir "$CERTS" --json >"$1"
}

PC=$WORK/pipe
printf '[main]\n' >"$WORK/dnf.conf"
declare -A PT
pipeline() {
  local t
  mkdir -p "$PC/root" "$PC/rpms" "$PC/rpmdb"
  t=$(date +%s.%N)
  # shellcheck disable=SC2046 # one name per word
  dnf --config="$WORK/dnf.conf" --installroot="$PC/root" --releasever=1 -y -q \
    --repofrompath=up,"$REPO_URL" --repo=up --setopt=reposdir=/dev/null --setopt=cachedir="$PC/cache" \
    --setopt=up.sslcacert="$PKI/ca.crt" --setopt=up.gpgcheck=1 --setopt=up.repo_gpgcheck=1 \
    --setopt=up.gpgkey=file://"$IN/RPM-GPG-KEY" \
    download --resolve --destdir "$PC/rpms" $(cat "$IN/names") >>"$WORK/dnf.log" 2>&1 || die "dnf download failed: $(tail -5 "$WORK/dnf.log")"
  PT[dnf]=$(seconds_since "$t")
  t=$(date +%s.%N)
  [ -f "$PC/rpmdb/rpmdb.sqlite" ] || rpmkeys --dbpath "$PC/rpmdb" --import "$IN/RPM-GPG-KEY"
  rpmkeys --dbpath "$PC/rpmdb" --checksig "$PC"/rpms/*.rpm >"$WORK/checksig.log" || die "rpmkeys --checksig failed: $(grep -v OK "$WORK/checksig.log" | head -3)"
  PT[rpmkeys]=$(seconds_since "$t")
  t=$(date +%s.%N)
  while read -r _ ref name; do
    skopeo copy -q --src-cert-dir "$CERTS" "$ref" "oci:$PC/images:$name" >/dev/null
  done < <(grep '^image ' "$WORK/lockinfo")
  PT[skopeo]=$(seconds_since "$t")
}

echo "== lock, and check that both sides get the same content (not measured)"
lock cold
"$MK" lockinfo -lock "$SPEC/bundle.lock" >"$WORK/lockinfo"
grep '^rpm ' "$WORK/lockinfo" | awk '{print $3}' | sort | cmp -s - "$IN/closure" || die "the lock's packages are not the planned closure"
pipeline
(cd "$PC/rpms" && sha256sum -- *.rpm) | sort -k2 >"$WORK/pipe.sums"
grep '^rpm ' "$WORK/lockinfo" | cut -d' ' -f2- | sort -k2 | cmp -s - "$WORK/pipe.sums" || die "dnf downloaded other files than the lock's"
while read -r _ ref name; do
  got=sha256:$(skopeo inspect --raw "oci:$PC/images:$name" | sha256sum | cut -d' ' -f1)
  [ "$got" = "${ref##*@}" ] || die "skopeo copied $name as $got, the lock says ${ref##*@}"
done < <(grep '^image ' "$WORK/lockinfo")
ferry "$WORK/check.json"
for d in $(grep '^image ' "$WORK/lockinfo" | awk '{print $2}' | sed 's/.*@//'); do
  grep -q "\"$d\"" "$WORK/check.json" || die "the ISO has no image $d"
done
n_rpms=$(grep -c '^rpm ' "$WORK/lockinfo")
n_images=$(grep -c '^image ' "$WORK/lockinfo")
rpm_bytes=$(bytes "$PC/rpms")
blob_bytes=$(bytes "$PC/images/blobs")
repo_rpms=$(find "$IN/repo/Packages" -name '*.rpm' | wc -l)
echo "  $n_rpms of the repository's $repo_rpms RPMs ($(mb "$rpm_bytes") MB) and $n_images images ($(mb "$blob_bytes") MB of blobs): same sha256 on both sides"
stop_agents "$WORK"

if [ -n "${MAX_LOAD:-}" ]; then
  for _ in $(seq "$((LOAD_WAIT / 10))"); do
    awk -v m="$MAX_LOAD" '{exit !($1 < m)}' /proc/loadavg && break
    sleep 10
  done
fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== measure: $RUNS runs, alternating; cold = empty caches, warm = the same command again"
declare -A T
add() { T[$1]+="$(printf '%.2f' "$2") "; }
for r in $(seq "$RUNS"); do
  for temp in cold warm; do
    t=$(date +%s.%N); lock "$temp"; add "lock_$temp" "$(seconds_since "$t")"
  done
  for temp in cold warm; do
    [ "$temp" = cold ] && rm -rf "$FC"
    f=$WORK/ferry-$temp-$r.json
    t=$(date +%s.%N); ferry "$f"; add "ferry_$temp" "$(seconds_since "$t")"
    add "fetch_$temp" "$(phases "$f" fetch)"; add "compose_$temp" "$(phases "$f" compose)"
    add "dl_$temp" "$(phases "$f" fetch compose)"
    add "iso_$temp" "$(phases "$f" iso check)"
    add "other_$temp" "$(phases "$f" resolve repodata manifest sign)"
    [ "$temp" = warm ] && ferry_disk_cache=$(bytes "$FC") ferry_disk_iso=$(bytes "$WORK/ferry.iso")
  done
  for temp in cold warm; do
    if [ "$temp" = cold ]; then stop_agents "$WORK"; rm -rf "$PC"; fi
    t=$(date +%s.%N); pipeline; add "pipe_$temp" "$(seconds_since "$t")"
    add "dnf_$temp" "${PT[dnf]}"; add "rpmkeys_$temp" "${PT[rpmkeys]}"; add "skopeo_$temp" "${PT[skopeo]}"
  done
  pipe_disk_rpms=$(bytes "$PC/rpms") pipe_disk_images=$(bytes "$PC/images") pipe_disk_meta=$(bytes "$PC/cache" "$PC/rpmdb" "$PC/root")
  stop_agents "$WORK"
done
lock_cache=$(bytes "$WORK/lockcache")
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

row() { # label key
  printf '%-44s %7.2f s %7.2f s   cold: %s| warm: %s\n' "$1" "$(med "${T[${2}_cold]}")" "$(med "${T[${2}_warm]}")" "${T[${2}_cold]}" "${T[${2}_warm]}"
}
printf '\n%s RPMs (%s MB) from nginx, %s images (%s MB of blobs) from distribution %s; TLS on loopback, %s cores\n' \
  "$n_rpms" "$(mb "$rpm_bytes")" "$n_images" "$(mb "$blob_bytes")" "$REGISTRY_VERSION" "$(nproc)"
printf '%-44s %9s %9s   runs\n' "" cold warm
row "builder lock (packages + images)" lock
row "ferry download: fetch + compose phases" dl
row "  fetch (images)" fetch
row "  compose (packages)" compose
row "ferry full build (builder build, wall)" ferry
row "  iso + check phases" iso
row "  resolve + repodata + manifest + sign" other
row "pipeline: dnf + rpmkeys + skopeo" pipe
row "  dnf download --resolve" dnf
row "  rpmkeys --checksig" rpmkeys
row "  skopeo copy (per locked digest)" skopeo
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
echo
for temp in cold warm; do
  dl=$(med "${T[dl_$temp]}") pipe=$(med "${T[pipe_$temp]}") full=$(med "${T[ferry_$temp]}") lk=$(med "${T[lock_$temp]}")
  printf '%-5s ferry download / pipeline %s ×  (target ≤ 1.0); lock + download / pipeline %s ×; full build / pipeline %s ×\n' \
    "$temp" "$(ratio "$dl" "$pipe")" "$(ratio "$(echo "$dl + $lk" | bc)" "$pipe")" "$(ratio "$full" "$pipe")"
done
echo
echo "disk after a warm run (du -sb, hard links counted once):"
printf '  ferry    cache %s MB, ISO %s MB (lock cache: %s kB of metadata)\n' "$(mb "$ferry_disk_cache")" "$(mb "$ferry_disk_iso")" "$((lock_cache / 1000))"
printf '  pipeline rpms %s MB, OCI layout %s MB, dnf cache + rpmdb %s MB\n' "$(mb "$pipe_disk_rpms")" "$(mb "$pipe_disk_images")" "$(mb "$pipe_disk_meta")"
echo "load average: $load_start at the start, $load_end at the end"
