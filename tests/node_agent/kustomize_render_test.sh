#!/usr/bin/env bash
# Renders every kustomize base under deploy/ with `kubectl kustomize` and checks that each
# output holds the node agent's DaemonSet and its ConfigMap. Skipped (exit 77) without kubectl.
set -u
root=$1
command -v kubectl >/dev/null 2>&1 || { echo "kubectl not installed: skipped"; exit 77; }
status=0
for dir in "$root"/deploy/base "$root"/deploy/examples/*/; do
  out=$(kubectl kustomize "$dir" 2>&1) || { echo "FAIL $dir: $out"; status=1; continue; }
  for kind in DaemonSet ConfigMap ServiceAccount; do
    grep -q "^kind: $kind\$" <<<"$out" || { echo "FAIL $dir: no $kind rendered"; status=1; }
  done
  echo "ok $dir"
done
exit $status
