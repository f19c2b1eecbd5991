#!/usr/bin/env bash
# Renders every kustomize base under deploy/ with `kubectl kustomize` and checks that each
# output holds the node agent's DaemonSet and its ConfigMap. Skipped (exit 77) without kubectl.
set -u
root=$1
command -v kubectl >/dev/null 2>&1 || { echo "kubectl not installed: skipped"; exit 77; }
status=0
for dir in "$root"/deploy/base "$root"/deploy/fractional "$root"/deploy/examples/*/; do
  out=$(kubectl kustomize "$dir" 2>&1) || { echo "FAIL $dir: $out"; status=1; continue; }
  for kind in DaemonSet ConfigMap ServiceAccount; do
    grep -q "^kind: $kind\$" <<<"$out" || { echo "FAIL $dir: no $kind rendered"; status=1; }
  done
  echo "ok $dir"
done
# The base runs the API side on its own Node and hands the shims to fractional containers from a
# host directory it also mounts at the same path; it installs the static OCI hook into a host
# directory and shares the isolation spool and the cgroup tree with the host at the same paths
# (the driver tier, where capable); the fractional overlay uses named configs.
# Whole lines, without indentation and list dashes: "--shim-dir=/x" must not match "--shim-dir=/xy".
lines() { sed -E 's/^ *(- )?//'; }
base=$(kubectl kustomize "$root/deploy/base" 2>&1 | lines)
for needle in '--node-name=$(NODE_NAME)' 'fieldPath: spec.nodeName' '--shim-dir=/var/lib/gpuslice/lib' \
              '--install-shims-from=/usr/local/lib/gpuslice' 'mountPath: /var/lib/gpuslice/lib' \
              'path: /var/lib/gpuslice/lib' 'hostPID: true' \
              '--isolation=auto' '--isolation-dir=/run/gpuslice/isolation' \
              '--cgroup-mount=/sys/fs/cgroup' '--install-hook-from=/usr/local/libexec/gpuslice' \
              '--hook-dir=/var/lib/gpuslice/bin' 'mountPath: /var/lib/gpuslice/bin' \
              'path: /var/lib/gpuslice/bin' 'mountPath: /run/gpuslice/isolation' \
              'path: /run/gpuslice/isolation' 'mountPath: /sys/fs/cgroup' 'path: /sys/fs/cgroup'; do
  grep -qxF -- "$needle" <<<"$base" || { echo "FAIL deploy/base lacks '$needle'"; status=1; }
done
frac=$(kubectl kustomize "$root/deploy/fractional" 2>&1 | lines)
for needle in '--config-dir=/etc/gpuslice' '--default-config=fractional' '--node-name=$(NODE_NAME)' \
              'fractional: |' 'slotsPerGpu: 16'; do
  grep -qxF -- "$needle" <<<"$frac" || { echo "FAIL deploy/fractional lacks '$needle'"; status=1; }
done
! grep -qF -- '--config=' <<<"$frac" || { echo "FAIL deploy/fractional still passes --config"; status=1; }
exit $status
