#!/usr/bin/env bash
# Renders deploy/scheduler with `kubectl kustomize` and checks that it holds the scheduler's
# objects and a KubeSchedulerConfiguration with the extender stanza gpuslice-scheduler needs.
# Skipped (exit 77) without kubectl.
set -u
root=$1
command -v kubectl >/dev/null 2>&1 || { echo "kubectl not installed: skipped"; exit 77; }
dir="$root/deploy/scheduler"
out=$(kubectl kustomize "$dir" 2>&1) || { echo "FAIL $dir: $out"; exit 1; }
status=0
for kind in Namespace ServiceAccount ClusterRole ClusterRoleBinding RoleBinding ConfigMap \
            Deployment Service; do
  grep -q "^kind: $kind\$" <<<"$out" || { echo "FAIL: no $kind rendered"; status=1; }
done
for needle in "kind: KubeSchedulerConfiguration" "schedulerName: gpuslice-scheduler" \
              "urlPrefix: http://127.0.0.1:8888/gpuslice" "filterVerb: filter" \
              "prioritizeVerb: prioritize" "bindVerb: bind" "nodeCacheCapable: true" \
              "name: gpuslice.io/gpu$" "name: gpuslice.io/gpu-memory$" \
              "name: gpuslice.io/gpu-compute$" "namespace: gpuslice-system" \
              "- pods/binding"; do
  grep -Eq -- "$needle" <<<"$out" ||
    { echo "FAIL: rendered output lacks '$needle'"; status=1; }
done
# The extender runs on in-cluster config: no static state file, no kubeconfig.
for banned in "--state-file" "--kubeconfig"; do
  ! grep -q -- "$banned" <<<"$out" || { echo "FAIL: rendered output passes $banned"; status=1; }
done
grep -q "automountServiceAccountToken: true" <<<"$out" ||
  { echo "FAIL: the service account token is not mounted"; status=1; }
ignored=$(grep -c "ignoredByScheduler: true" <<<"$out")
[ "$ignored" -eq 3 ] || { echo "FAIL: $ignored managed resources ignoredByScheduler, want 3"; status=1; }
[ $status -eq 0 ] && echo "ok $dir"
exit $status
