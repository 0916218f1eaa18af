#!/usr/bin/env bash
# Benchmark: builder against the usual tool chain on the same inputs, and
# installer verify against sha256sum on the same ISO. Prints ratios; the
# figures go to docs/performance.md by hand, with the machine they ran on.
#
#   tool chain = skopeo copy --preserve-digests (per image, into one OCI
#                layout) + cp of the RPMs + createrepo_c + xorriso -as mkisofs -R -J
#   builder    = bin/builder build (all phases, including signing and the
#                final self-verification)
#
# Each command runs RUNS times, alternating, and the median is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${BENCH_DIR:-_bench}
RUNS=${RUNS:-3}
IMAGES=${IMAGES:-8} LAYERS=${LAYERS:-4} LAYER_MIB=${LAYER_MIB:-42} RPMS=${RPMS:-200}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}

for prog in skopeo createrepo_c xorriso sha256sum; do
  command -v $prog >/dev/null || { echo "bench: $prog is missing (make deps)" >&2; exit 1; }
done
[ -x bin/builder ] || { echo "bench: run make build first" >&2; exit 1; }

IN=$ROOT/input
if [ ! -f "$IN/.done-$IMAGES-$LAYERS-$LAYER_MIB-$RPMS" ]; then
  echo "generating input: $IMAGES images × $LAYERS layers × $LAYER_MIB MiB, $RPMS RPMs"
  go run -tags containers_image_openpgp ./bench/mkinput -dir "$IN" -images "$IMAGES" -layers "$LAYERS" -layer-mib "$LAYER_MIB" -rpms "$RPMS"
  touch "$IN/.done-$IMAGES-$LAYERS-$LAYER_MIB-$RPMS"
fi
echo "input: $(du -sh --apparent-size "$IN" | cut -f1)"

toolchain() {
  local t=$ROOT/tc; rm -rf "$t"; mkdir -p "$t/tree/packages/base/Packages"
  while read -r ref; do
    skopeo copy -q --preserve-digests "oci:$IN/layout:$ref" "oci:$t/tree/images:registry.example.com/bench/$ref:1.0" >/dev/null
  done < "$IN/refs"
  cp "$IN"/rpms/*.rpm "$t/tree/packages/base/Packages/"
  createrepo_c -q "$t/tree/packages/base" >/dev/null
  xorriso -as mkisofs -quiet -R -J -o "$t/out.iso" "$t/tree" 2>/dev/null
  sync -f "$t/out.iso"
}

ferry() {
  local t=$ROOT/ferry; rm -rf "$t"; mkdir -p "$t"
  bin/builder --log-level warn build --spec "$IN/bundle.yaml" --output "$t/out.iso" --signing-key "$IN/key.asc" >/dev/null
}

verify_ferry() { bin/installer --log-level warn verify --iso "$ROOT/ferry/out.iso" --keyring "$IN/pub.asc" >/dev/null; }
sha256sum_iso() { sha256sum "$ROOT/ferry/out.iso" >/dev/null; }

seconds() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure_pair() { # name_a fn_a name_b fn_b
  local a=() b=()
  for _ in $(seq "$RUNS"); do
    a+=("$(seconds "$2")"); b+=("$(seconds "$4")")
  done
  local ma mb; ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
  printf '%-22s %8.2f s   (runs: %s)\n' "$1" "$ma" "${a[*]}"
  printf '%-22s %8.2f s   (runs: %s)\n' "$3" "$mb" "${b[*]}"
  printf '%-22s %8.2f ×\n' "ratio $1/$3" "$(echo "$ma / $mb" | bc -l)"
}

command -v bc >/dev/null || { echo "bench: bc is missing (apt-get install bc)" >&2; exit 1; }
echo "== build ($RUNS runs each, median)"
measure_pair builder ferry toolchain toolchain
echo "ISO sizes: builder $(stat -c %s "$ROOT/ferry/out.iso") B, tool chain $(stat -c %s "$ROOT/tc/out.iso") B"
echo "== verify"
measure_pair "installer verify" verify_ferry sha256sum sha256sum_iso
echo "(verify ≥ 3× sha256sum means the ratio above ≤ 0.33)"
