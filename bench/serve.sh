#!/usr/bin/env bash
# Benchmark: serving. `installer serve` against the reference registry
# (distribution/distribution v3, filesystem storage) and against nginx
# serving the same blobs as static files, all over TLS on loopback with one
# throwaway CA (internal/testpki), loaded by the same Go client
# (bench/serveload: 16 HTTP/1.1 keep-alive connections).
#
#   throughput       every blob of every image, once per run (MB/s = 10^6 B/s)
#   manifest latency MANIFEST_GETS GETs of the images' manifests by tag
#   peak RSS         VmHWM of the installer process (start-up verification included)
#
# The manifests and blobs are byte-identical everywhere: the registry is
# loaded with skopeo --preserve-digests from the bundle's own OCI layout
# (extracted from the ISO), nginx serves the extracted blob files, and a
# first, unmeasured pass per server checks every blob's sha256 and compares
# the manifest digests. Each server is then measured RUNS times,
# alternating, and the median is reported. The figures go to
# docs/performance.md by hand, with the machine they ran on.
#
# Variables: RUNS (5), IMAGES LAYERS LAYER_MIB RPMS (as bench/build.sh: the
# input is shared with it when the sizes match), CLIENTS (16),
# MANIFEST_GETS (2000), BENCH_DIR (_bench), BENCH_CACHE
# (/var/cache/ferry-bench: the registry binary), REGISTRY_VERSION (v3.1.2),
# INSTALLER (bin/installer), KEEP_WORK (set: keep the run directory, its
# JSON reports and logs, under $BENCH_DIR/serve).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${BENCH_DIR:-_bench}
CACHE=${BENCH_CACHE:-/var/cache/ferry-bench}
RUNS=${RUNS:-5}
IMAGES=${IMAGES:-8} LAYERS=${LAYERS:-4} LAYER_MIB=${LAYER_MIB:-42} RPMS=${RPMS:-200}
CLIENTS=${CLIENTS:-16} MANIFEST_GETS=${MANIFEST_GETS:-2000}
REGISTRY_VERSION=${REGISTRY_VERSION:-v3.1.2}
INSTALLER=${INSTALLER:-bin/installer}
export CGO_ENABLED=0

die() { echo "bench-serve: $*" >&2; exit 1; }
for prog in go skopeo nginx xorriso curl bc; do
  command -v $prog >/dev/null || die "$prog is missing (make deps; apt-get install nginx bc)"
done
[ -x bin/builder ] && [ -x "$INSTALLER" ] || die "run make build first"
"$INSTALLER" serve --help >/dev/null 2>&1 || die "$INSTALLER has no serve command: run make build"

KEY=$IMAGES-$LAYERS-$LAYER_MIB-$RPMS
mkdir -p "$ROOT/serve"

# Input: bench/build.sh's when the sizes match, else our own.
IN=$ROOT/input
if [ ! -f "$IN/.done-$KEY" ]; then
  IN=$ROOT/serve/input-$KEY
  if [ ! -f "$IN/.done-$KEY" ]; then
    echo "generating input: $IMAGES images × $LAYERS layers × $LAYER_MIB MiB, $RPMS RPMs"
    go run -tags containers_image_openpgp ./bench/mkinput -dir "$IN" -images "$IMAGES" -layers "$LAYERS" -layer-mib "$LAYER_MIB" -rpms "$RPMS"
    touch "$IN/.done-$KEY"
  fi
fi

# The bundle. Built at the current time (not SOURCE_DATE_EPOCH, which the
# Makefile pins to 2026-01-01): a served bundle must not have expired.
ISO=$ROOT/serve/bundle-$KEY.iso
if [ ! -f "$ISO" ] || [ -n "$(find "$ISO" -mtime +180)" ] || [ "$IN/.done-$KEY" -nt "$ISO" ]; then
  echo "building the bundle"
  SOURCE_DATE_EPOCH=$(date +%s) bin/builder --log-level warn build --spec "$IN/bundle.yaml" --output "$ISO" --signing-key "$IN/key.asc" >/dev/null
  rm -rf "$ROOT/serve/images-$KEY"
fi
# Its OCI layout as files, for the registry's loading and for nginx.
LAYOUT=$ROOT/serve/images-$KEY
if [ ! -f "$LAYOUT/.done" ]; then
  rm -rf "$LAYOUT"
  xorriso -osirrox on -indev "$ISO" -extract /images "$LAYOUT" 2>/dev/null
  chmod -R u+w "$LAYOUT"
  touch "$LAYOUT/.done"
fi
LAYOUT=$(realpath "$LAYOUT")
blob_bytes=$(du -sb --apparent-size "$LAYOUT/blobs" | cut -f1)

# The reference registry, built once outside this module.
REGISTRY=$CACHE/bin/registry-$REGISTRY_VERSION
if [ ! -x "$REGISTRY" ]; then
  echo "building distribution/distribution $REGISTRY_VERSION into $CACHE/bin"
  mkdir -p "$CACHE/bin"
  tmp=$(mktemp -d)
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION")
  mv "$tmp/registry" "$REGISTRY"
  rm -rf "$tmp"
fi

WORK=$(mktemp -d -p "$ROOT/serve" run.XXXXXX)
WORK=$(realpath "$WORK")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/serveload" ./bench/serveload
LOAD=$WORK/serveload
PKI=$WORK/pki
"$LOAD" -pki "$PKI"
mkdir -p "$WORK/certs.d" && cp "$PKI/ca.crt" "$WORK/certs.d/"

free_port() { # a port nothing listens on now
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

REPOS=$(sed 's|^|registry.example.com/bench/|; s|$|:1.0|' "$IN/refs" | paste -sd, -)

# Ferry.
FP=$(free_port)
ferry_start=$(date +%s.%N)
"$INSTALLER" --log-level warn serve --iso "$ISO" --listen "127.0.0.1:$FP" \
  --tls-cert "$PKI/server.crt" --tls-key "$PKI/server.key" --keyring "$IN/pub.asc" \
  $("$INSTALLER" serve --help 2>&1 | grep -q -- -pid-file && echo --pid-file "$WORK/ferry.pid") \
  2>"$WORK/ferry.log" &
FERRY_PID=$!; PIDS+=("$FERRY_PID")
wait_ready "https://127.0.0.1:$FP/readyz" "installer serve"
ferry_ready=$(echo "$(date +%s.%N) - $ferry_start" | bc)

# The reference registry: filesystem storage, loaded by skopeo from the
# bundle's layout with digests preserved (slow: about 15 MB/s here, so the
# loaded storage is kept for the next runs, next to the ISO it came from).
RP=$(free_port)
REGDATA=$(realpath "$ROOT/serve")/registry-$KEY
if [ ! -f "$REGDATA.done" ] || [ "$ISO" -nt "$REGDATA.done" ]; then
  rm -rf "$REGDATA" "$REGDATA.done"
fi
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
OTEL_TRACES_EXPORTER=none "$REGISTRY" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!; PIDS+=("$REGISTRY_PID")
wait_ready "https://127.0.0.1:$RP/v2/" "the registry"
if [ ! -f "$REGDATA.done" ]; then
  echo "loading the registry with skopeo"
  load_start=$(date +%s.%N)
  while read -r ref; do
    name=registry.example.com/bench/$ref:1.0
    skopeo copy -q --preserve-digests --dest-cert-dir "$WORK/certs.d" "oci:$LAYOUT:$name" "docker://127.0.0.1:$RP/$name" >/dev/null
  done <"$IN/refs"
  touch "$REGDATA.done"
  echo "  $(echo "$(date +%s.%N) - $load_start" | bc | xargs printf '%.1f') s"
fi

# nginx: the same blob files, at the registry's URLs.
NP=$(free_port)
mkdir -p "$WORK/nginx/tmp" "$WORK/static"
while read -r ref; do
  d=$WORK/static/v2/registry.example.com/bench/$ref/manifests
  mkdir -p "$d"
  digest=$(skopeo inspect --raw "oci:$LAYOUT:registry.example.com/bench/$ref:1.0" | sha256sum | cut -d' ' -f1)
  cp "$LAYOUT/blobs/sha256/$digest" "$d/1.0"
done <"$IN/refs"
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
  keepalive_timeout 120s;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  types { }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NP ssl;
    ssl_certificate $PKI/server.crt;
    ssl_certificate_key $PKI/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $WORK/static;
    location ~ "^/v2/.+/blobs/sha256:([0-9a-f]{64})\$" {
      alias $LAYOUT/blobs/sha256/\$1;
    }
    location ~ ^/v2/.+/manifests/ {
      default_type application/vnd.oci.image.manifest.v1+json;
    }
  }
}
EOF
nginx -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
wait_ready "https://127.0.0.1:$NP/v2/registry.example.com/bench/$(head -1 "$IN/refs")/manifests/1.0" nginx

declare -A BASE=([ferry]="https://127.0.0.1:$FP" [registry]="https://127.0.0.1:$RP" [nginx]="https://127.0.0.1:$NP")
declare -A KIND=([ferry]=registry [registry]=registry [nginx]=static)
SERVERS=(ferry registry nginx)

declare -A SPIDS=([ferry]="$FERRY_PID" [registry]="$REGISTRY_PID" [nginx]="$NGINX_PID $(pgrep -P "$NGINX_PID" | paste -sd' ')")

load() { # server out [flags]
  local s=$1 out=$2; shift 2
  "$LOAD" -base "${BASE[$s]}" -cacert "$PKI/ca.crt" -kind "${KIND[$s]}" -repos "$REPOS" \
    -clients "$CLIENTS" -manifest-gets "$MANIFEST_GETS" -timeout 15m "$@" >"$out"
}
field() { grep -o "\"$1\": [0-9.e+-]*" "$2" | head -1 | awk '{print $2}'; }
manifests() { grep -o '"registry\.example\.com/[^"]*": "sha256:[0-9a-f]*"' "$1" | sort; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
HZ=$(getconf CLK_TCK)
cpu_seconds() { # pids: user + system CPU time of the server's processes
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t / $HZ" | bc -l
}

echo "== check: every blob's sha256 on every server (not measured; warms the page cache)"
for s in "${SERVERS[@]}"; do
  load "$s" "$WORK/check-$s.json" -verify -manifest-gets 0
  manifests "$WORK/check-$s.json" >"$WORK/manifests-$s"
  echo "  $s: $(field blobs "$WORK/check-$s.json") blobs, $(field bytes "$WORK/check-$s.json") bytes verified; $(grep -o '"tls": "[^"]*"' "$WORK/check-$s.json" | cut -d'"' -f4)"
done
for s in registry nginx; do
  cmp -s "$WORK/manifests-ferry" "$WORK/manifests-$s" || die "manifest digests differ between ferry and $s"
done
[ "$(wc -l <"$WORK/manifests-ferry")" -eq "$(wc -l <"$IN/refs")" ] || die "not every image was resolved"

echo "== measure: $RUNS runs per server, alternating; $CLIENTS clients; $MANIFEST_GETS manifest GETs"
declare -A TP P50 P99 SCPU CCPU
for r in $(seq "$RUNS"); do
  for s in "${SERVERS[@]}"; do
    f=$WORK/pull-$s-$r.json
    # shellcheck disable=SC2086 # SPIDS holds several pids for nginx
    c0=$(cpu_seconds ${SPIDS[$s]})
    load "$s" "$f" -manifest-gets 0
    c1=$(cpu_seconds ${SPIDS[$s]})
    gb=$(echo "$(field bytes "$f") / 1000000000" | bc -l)
    TP[$s]+="$(field mb_per_s "$f") "
    SCPU[$s]+="$(printf '%.2f' "$(echo "($c1 - $c0) / $gb" | bc -l)") "
    CCPU[$s]+="$(printf '%.2f' "$(echo "$(field client_cpu_seconds "$f") / $gb" | bc -l)") "
    f=$WORK/manifests-$s-$r.json
    load "$s" "$f" -skip-pull
    P50[$s]+="$(field p50_ms "$f") "; P99[$s]+="$(field p99_ms "$f") "
  done
done
ferry_hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$FERRY_PID/status")
ferry_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$FERRY_PID/status")
digest_failures=$(curl -sf --cacert "$PKI/ca.crt" "${BASE[ferry]}/metrics" | awk '/^ferry_content_digest_failures_total/ {s+=$2} END {print s+0}')

printf '\n%s images, %s bytes of blobs (%s MiB), %s clients, HTTP/1.1 over TLS, loopback, %s cores\n' \
  "$(wc -l <"$IN/refs")" "$blob_bytes" "$((blob_bytes >> 20))" "$CLIENTS" "$(nproc)"
best() { echo "$1" | tr ' ' '\n' | grep . | sort -g | tail -1; }
printf '%-9s %7s %7s %8s %8s %8s %8s   %s\n' server "MB/s" "best" "p50 ms" "p99 ms" "srv s/GB" "cli s/GB" "runs: MB/s | p99 ms"
for s in "${SERVERS[@]}"; do
  printf '%-9s %7.0f %7.0f %8.2f %8.2f %8.2f %8.2f   %s| %s\n' "$s" "$(med "${TP[$s]}")" "$(best "${TP[$s]}")" \
    "$(med "${P50[$s]}")" "$(med "${P99[$s]}")" "$(med "${SCPU[$s]}")" "$(med "${CCPU[$s]}")" \
    "$(printf '%.0f ' ${TP[$s]})" "$(printf '%.2f ' ${P99[$s]})"
done
echo "(MB/s: median and best run; s/GB: CPU seconds, user + system, per 10^9 bytes pulled, server and client)"
ratio() { echo "$1 / $2" | bc -l; }
echo
# "server CPU": the other's server CPU per GB over ferry's, i.e. the
# throughput ratio if each server had the machine to itself and were
# CPU-bound (the client's cost is the same for all three).
printf '%-30s %6.2f ×  best runs %.2f ×  server CPU %.2f ×  (target ≥ 1.0)\n' "throughput ferry / registry" \
  "$(ratio "$(med "${TP[ferry]}")" "$(med "${TP[registry]}")")" "$(ratio "$(best "${TP[ferry]}")" "$(best "${TP[registry]}")")" \
  "$(ratio "$(med "${SCPU[registry]}")" "$(med "${SCPU[ferry]}")")"
printf '%-30s %6.2f ×  best runs %.2f ×  server CPU %.2f ×  (target ≥ 0.8)\n' "throughput ferry / nginx" \
  "$(ratio "$(med "${TP[ferry]}")" "$(med "${TP[nginx]}")")" "$(ratio "$(best "${TP[ferry]}")" "$(best "${TP[nginx]}")")" \
  "$(ratio "$(med "${SCPU[nginx]}")" "$(med "${SCPU[ferry]}")")"
printf '%-30s %6.2f ms (target ≤ 10 ms)\n' "ferry manifest p99" "$(med "${P99[ferry]}")"
printf '%-30s %6.1f MiB (target ≤ 100 MiB; at the end %.1f MiB)\n' "ferry peak RSS (VmHWM)" "$(echo "$ferry_hwm / 1024" | bc -l)" "$(echo "$ferry_rss / 1024" | bc -l)"
printf '%-30s %6.2f s  (verification of the ISO included)\n' "ferry start to ready" "$ferry_ready"
printf '%-30s %6d\n' "ferry digest failures" "$digest_failures"
printf '%-30s %s\n' "load average at the end" "$(cut -d' ' -f1-3 /proc/loadavg)"
