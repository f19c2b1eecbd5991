#!/usr/bin/env bash
# CTest deploy_image_layout: what deploy/image/Dockerfile puts in the images is what deploy/
# runs. Installs the build (`cmake --install`, as the Dockerfile's build stage) into a temporary
# /usr/local and checks that
#   - every command deploy/ gives a gpuslice container is an installed binary in bin/;
#   - the directories deploy/base's --install-shims-from and --install-hook-from name hold the
#     shims and the static hook;
#   - every library an installed ELF file loads (readelf NEEDED) comes from a Debian package the
#     Dockerfile's runtime stage installs, or from the base image (libc6, libstdc++6, libgcc-s1).
# Usage: image_layout_test.sh <build dir> <source dir>. Exit 77 (skipped) without readelf/dpkg.
set -euo pipefail
build=$1
src=$2
for tool in readelf dpkg ldconfig; do
  command -v "$tool" >/dev/null 2>&1 || { echo "skipped: no $tool"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/usr/local
cmake --install "$build" --prefix "$prefix" >/dev/null
failed=0
fail() { echo "FAIL: $*"; failed=1; }

# 1. The commands deploy/ runs in gpuslice images.
while read -r binary; do
  [ -x "$prefix/bin/$binary" ] || fail "deploy/ runs '$binary', which cmake --install does not put in bin/"
done < <(grep -rh -A1 'image: ghcr.io/gpuslice/' "$src/deploy" | sed -n 's/.*command: \["\([^"]*\)".*/\1/p')
[ -n "$(grep -rh -A1 'image: ghcr.io/gpuslice/' "$src/deploy" | grep 'command:')" ] ||
  fail "no command found for the gpuslice images in deploy/"

# 2. The directories the agent installs from.
flag() { sed -n "s/.*- --$1=\(.*\)/\1/p" "$src/deploy/base/daemonset.yaml"; }
shims=$(flag install-shims-from)
hook=$(flag install-hook-from)
for f in "$shims/libgpuslice-cuda.so" "$shims/libgpuslice-nvml.so" "$hook/gpuslice-oci-hook"; do
  case "$f" in /usr/local/*) ;; *) fail "$f is not under /usr/local, where the image installs" ;; esac
  [ -f "$tmp$f" ] || fail "deploy/base expects $f in the image; cmake --install does not put it there"
done

# 3. Every NEEDED library's package is in the runtime stage (or the base image).
runtime_packages=$(awk '/^FROM .* AS runtime/{r=1; next} /^FROM /{r=0} r' "$src/deploy/image/Dockerfile" |
  tr ' \\' '\n\n' | grep -E '^lib|^ca-certificates$' || true)
allowed=" libc6 libstdc++6 libgcc-s1 $(echo $runtime_packages) "
checked=0
# No pipe here ends before its writer: under pipefail a writer's SIGPIPE would end the script.
ldconfig -p >"$tmp/ld.cache"
while IFS= read -r -d '' file; do
  readelf -h "$file" >/dev/null 2>&1 || continue  # not an ELF file
  for lib in $(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(awk -v l="$lib" '$1 == l && !found {print $NF; found = 1}' "$tmp/ld.cache")
    if [ -z "$path" ]; then fail "${file#$prefix/} needs $lib, which ldconfig does not know"; continue; fi
    real=$(readlink -f "$path")
    package=$( (dpkg -S "$path" || dpkg -S "$real" || dpkg -S "${real#/usr}") 2>/dev/null |
      awk -F: 'NR == 1 {print $1}')
    if [ -z "$package" ]; then fail "${file#$prefix/} needs $lib ($real), which no Debian package owns"; continue; fi
    case "$allowed" in *" $package "*) checked=$((checked + 1)) ;;
      *) fail "${file#$prefix/} needs $lib from $package, which deploy/image/Dockerfile's runtime stage does not install" ;;
    esac
  done
done < <(find "$prefix" -type f -print0)
[ "$checked" -gt 0 ] || fail "no library was checked"
[ "$failed" -eq 0 ] && echo "deploy_image_layout: $checked libraries of the installed files come from the runtime stage's packages"
exit "$failed"
