#!/usr/bin/env bash
# The chart-testing `ct install` flow, on a throwaway control plane, in one command:
#   1. starts etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok
#      on 127.0.0.1 (tests/harness/controlplane.py; binaries from tools/install-k8s.sh);
#   2. for each values file (default: values/*.yaml and charts/matomo/ci/*.yaml):
#      a namespace enforcing PodSecurity `restricted`, `helm install --wait`
#      (the post-install hook Job must complete), `helm test`, `helm uninstall`;
#   3. stops everything, whatever happened.
# kwok is the node: pods become Ready, Jobs and test pods Succeed, no container runs.
# With --pytest it then runs the full suite tests/cluster (upgrade, rollback,
# strict validation, hook RBAC, ...) on a control plane of its own, then
# tests/node: the chart on a REAL node (kubelet, containerd, runc, kube-proxy,
# CoreDNS in a network namespace with no route out, tests/harness/node.py),
# which skips with its reason where the machine does not allow it (root,
# network namespaces) or when MATOMO_NODE_TESTS=0.
#
# Usage: tools/cluster-test.sh [--pytest] [values.yaml ...]
#   env: CLUSTER_TEST_LEVEL (PodSecurity level of the namespaces, default restricted)
#        CLUSTER_TEST_TIMEOUT (helm --timeout, default 5m), CONTROLPLANE_KEEP_LOGS=1
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export PATH="${ROOT}/.tools/k8s/bin:${ROOT}/.tools/bin:${PATH}"
PY="${ROOT}/.tools/venv/bin/python"
[[ -x "${PY}" ]] || PY="$(command -v python3)"
LEVEL="${CLUSTER_TEST_LEVEL:-restricted}"
TIMEOUT="${CLUSTER_TEST_TIMEOUT:-5m}"
RUN_PYTEST=0
FILES=()
for arg in "$@"; do
  case "${arg}" in
    --pytest) RUN_PYTEST=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) FILES+=("${arg}") ;;
  esac
done
if [[ ${#FILES[@]} -eq 0 ]]; then
  shopt -s nullglob
  FILES=(values/*.yaml charts/matomo/ci/*.yaml)
  shopt -u nullglob
fi

for tool in helm kubectl etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
  command -v "${tool}" >/dev/null || { echo "cluster-test: ${tool} not found; run ./dev tools" >&2; exit 1; }
done

START=${SECONDS}
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cluster-test.XXXXXX")"
CP_PID=""
cleanup() {
  local rc=$?
  if [[ -n "${CP_PID}" ]] && kill -0 "${CP_PID}" 2>/dev/null; then
    kill -TERM "${CP_PID}" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "${CP_PID}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${CP_PID}" 2>/dev/null || true
  fi
  rm -rf "${WORK}"
  echo "cluster-test: finished in $((SECONDS - START))s (exit ${rc})" >&2
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "cluster-test: starting the control plane" >&2
CONTROLPLANE_READY_FILE="${WORK}/ready" PYTHONPATH=tests "${PY}" -m harness.controlplane >"${WORK}/controlplane.out" 2>&1 &
CP_PID=$!
for _ in $(seq 1 600); do
  [[ -s "${WORK}/ready" ]] && break
  if ! kill -0 "${CP_PID}" 2>/dev/null; then
    cat "${WORK}/controlplane.out" >&2
    echo "cluster-test: the control plane did not start" >&2
    exit 1
  fi
  sleep 0.2
done
[[ -s "${WORK}/ready" ]] || { cat "${WORK}/controlplane.out" >&2; exit 1; }
export KUBECONFIG
KUBECONFIG="$(cat "${WORK}/ready")"
export HELM_CACHE_HOME="${WORK}/helm/cache" HELM_CONFIG_HOME="${WORK}/helm/config" HELM_DATA_HOME="${WORK}/helm/data"
head -1 "${WORK}/controlplane.out" >&2

FAILED=()
i=0
for values in "${FILES[@]}"; do
  i=$((i + 1))
  ns="ct-$(basename "${values}" .yaml | tr -c 'a-z0-9\n' '-' | cut -c1-40)-${i}"
  echo "cluster-test: === ${values} -> namespace ${ns} (PodSecurity ${LEVEL})" >&2
  kubectl create namespace "${ns}" >/dev/null
  kubectl label namespace "${ns}" >/dev/null \
    "pod-security.kubernetes.io/enforce=${LEVEL}" "pod-security.kubernetes.io/enforce-version=latest" \
    "pod-security.kubernetes.io/warn=${LEVEL}" "pod-security.kubernetes.io/warn-version=latest"
  for _ in $(seq 1 100); do kubectl -n "${ns}" get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
  ok=1
  helm install matomo charts/matomo -n "${ns}" -f "${values}" --wait --timeout "${TIMEOUT}" >"${WORK}/install.log" 2>&1 || ok=0
  if [[ ${ok} -eq 1 ]]; then
    echo "cluster-test: installed" >&2
    if helm test matomo -n "${ns}" --timeout "${TIMEOUT}" >"${WORK}/test.log" 2>&1; then
      echo "cluster-test: helm test passed" >&2
    else
      ok=0; cat "${WORK}/test.log" >&2
    fi
    helm uninstall matomo -n "${ns}" --wait --timeout "${TIMEOUT}" >/dev/null 2>&1 || { ok=0; echo "cluster-test: uninstall failed" >&2; }
  else
    cat "${WORK}/install.log" >&2
    kubectl -n "${ns}" get all,events 2>&1 | tail -30 >&2 || true
  fi
  kubectl delete namespace "${ns}" --wait=false >/dev/null 2>&1 || true
  if [[ ${ok} -eq 1 ]]; then echo "cluster-test: PASS ${values}" >&2; else echo "cluster-test: FAIL ${values}" >&2; FAILED+=("${values}"); fi
done

kill -TERM "${CP_PID}" 2>/dev/null || true
wait "${CP_PID}" 2>/dev/null || true
CP_PID=""

if [[ ${RUN_PYTEST} -eq 1 ]]; then
  "${PY}" -m pytest tests/cluster -q || FAILED+=("tests/cluster")
  "${PY}" -m pytest tests/node -q -ra || FAILED+=("tests/node")
fi

if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "cluster-test: FAILED: ${FAILED[*]}" >&2
  exit 1
fi
echo "cluster-test: all passed (${#FILES[@]} values files)" >&2
