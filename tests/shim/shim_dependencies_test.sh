#!/usr/bin/env bash
# CTest shim_needs_only_libc: the shims are preloaded (/etc/ld.so.preload) into container images
# gpuslice does not control, and a preloaded library whose dependency the loader cannot find
# stops every process of the container from starting. So each shim may need only what every
# glibc image has: libc, libm, libdl, libpthread, librt and the loader.
# Usage: shim_dependencies_test.sh <shim.so>...  Exit 77 (skipped) without readelf.
set -euo pipefail
command -v readelf >/dev/null 2>&1 || { echo "skipped: no readelf"; exit 77; }
failed=0
for shim in "$@"; do
  needed=$(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  [ -n "$needed" ] || { echo "FAIL: $shim needs nothing? (readelf found no NEEDED entry)"; failed=1; }
  for lib in $needed; do
    case "$lib" in
      libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*.so.*) ;;
      *) echo "FAIL: $shim needs $lib, which a container image may lack"; failed=1 ;;
    esac
  done
  echo "$shim needs: $(echo $needed)"
done
exit "$failed"
