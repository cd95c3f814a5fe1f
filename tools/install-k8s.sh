#!/usr/bin/env bash
# Build the Kubernetes control plane used by tests/cluster at pinned versions:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kubelet, kube-proxy                               (k8s.io/kubernetes, built from the Go module)
#   etcd                                              (go.etcd.io/etcd/server/v3, built from the Go module)
#   kwok                                              (sigs.k8s.io/kwok, go install)
#   coredns                                           (github.com/coredns/coredns, go install)
#   registry                                          (github.com/distribution/distribution/v3, filesystem storage only)
# kubelet, kube-proxy and coredns are the real node of tests/node
# (tests/harness/node.py); containerd, runc and the CNI plugins come from
# Debian (tools/install-base.sh). registry (the CNCF distribution registry) is
# the local OCI registry tools/release.sh publishes to in
# tests/node/test_node_release.py, served inside the node's network namespace.
# Binaries go to .tools/k8s/bin; a stamp file keyed by the version makes the
# second run a no-op. Go caches stay in their default global locations (or
# whatever GOMODCACHE/GOCACHE say), so a rebuild after a version bump is warm.
# Only the Go module proxy is used (no dl.k8s.io, no GitHub releases).
# K8S_VERSION must be a release whose staging modules (k8s.io/api, ...,
# k8s.io/endpointslice) are all published at the matching v0.x.y: v1.31.14
# is not (k8s.io/endpointslice@v0.31.14 is unavailable from the proxy).
#
# Usage: tools/install-k8s.sh [--force]
#   env: K8S_VERSION, ETCD_VERSION, KWOK_VERSION, COREDNS_VERSION, REGISTRY_VERSION; INSTALL_K8S_DIR (default .tools/k8s)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.12}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.17}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.4}"
REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.2}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${INSTALL_K8S_DIR:-${ROOT}/.tools/k8s}"
BIN="${TOOLS}/bin"
STAMPS="${TOOLS}/stamps"
BUILD="${TOOLS}/build"
mkdir -p "${BIN}" "${STAMPS}" "${BUILD}"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:${PATH}"
  else
    echo "install-k8s: Go toolchain not found (expected on PATH or /usr/local/go/bin)" >&2
    exit 1
  fi
fi
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0
# never switch toolchains behind our back
export GOTOOLCHAIN=local

log() { printf 'install-k8s: %s\n' "$*" >&2; }

have() { # have <stamp-name> <binaries...>
  local stamp="${STAMPS}/$1"; shift
  [[ ${FORCE} -eq 0 && -f "${stamp}" ]] || return 1
  local b
  for b in "$@"; do [[ -x "${BIN}/${b}" ]] || return 1; done
  return 0
}

# build <name> <version> <build-function> <binaries...>: runs the function
# unless have <name>-<version> <binaries...>; then that stamp replaces any
# older one of <name>.
build() {
  local name=$1 version=$2 fn=$3
  shift 3
  local stamp="${name}-${version}"
  if have "${stamp}" "$@"; then
    log "${name} ${version}: up to date"
    return
  fi
  local t0=${SECONDS}
  "${fn}"
  rm -f "${STAMPS}/${name}"-*
  touch "${STAMPS}/${stamp}"
  log "${name} ${version}: built in $((SECONDS - t0))s"
}

# --- kube-apiserver, kube-controller-manager, kubectl --------------------------
build_kubernetes() {
  local staging_version="v0${K8S_VERSION#v1}" # v1.31.14 -> v0.31.14
  log "kubernetes ${K8S_VERSION}: downloading the module"
  local dir
  dir="$(cd "${BUILD}" && go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')"
  local src="${BUILD}/kubernetes-${K8S_VERSION}"
  rm -rf "${src}"
  cp -r "${dir}" "${src}"
  chmod -R u+w "${src}"
  # the module zip has no staging/ (nested modules) and no vendor/ tree:
  # point every ./staging replace at the published module of the same release
  rm -f "${src}/go.work" "${src}/go.work.sum"
  rm -rf "${src}/vendor"
  local edits=() mod
  while read -r mod; do
    edits+=("-replace=${mod}=${mod}@${staging_version}")
  done < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "${src}/go.mod")
  (cd "${src}" && go mod edit "${edits[@]}")
  local ldflags="-s -w"
  ldflags+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "${K8S_VERSION}" | cut -d. -f2)"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}"
  log "kubernetes ${K8S_VERSION}: building kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy"
  (cd "${src}" && GOFLAGS="${GOFLAGS} -mod=mod" go build -trimpath -ldflags "${ldflags}" \
    -o "${BIN}/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubectl \
    ./cmd/kubelet ./cmd/kube-proxy)
  rm -rf "${src}"
}

# --- etcd ----------------------------------------------------------------------
# go.etcd.io/etcd/server/v3 has ../ replace directives, so `go install` refuses
# it; a two-line main in our own module builds the same etcdmain.
build_etcd() {
  local src="${BUILD}/etcd-${ETCD_VERSION}"
  rm -rf "${src}"
  mkdir -p "${src}"
  cat >"${src}/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (
    cd "${src}"
    go mod init local/etcd >/dev/null 2>&1
    go mod edit -go=1.22
    go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1
    go mod tidy >/dev/null
    go build -trimpath -ldflags "-s -w" -o "${BIN}/etcd" .
  )
  rm -rf "${src}"
}

# --- kwok ----------------------------------------------------------------------
build_kwok() {
  (cd "${BUILD}" && GOBIN="${BIN}" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}")
}

# --- coredns (the node's cluster DNS) -------------------------------------------
build_coredns() {
  (cd "${BUILD}" && GOBIN="${BIN}" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@${COREDNS_VERSION}")
}

# --- registry (tests/node/test_node_release.py) -----------------------------------
# The distribution registry's own command with the filesystem storage driver
# only: its cmd/registry also links the S3, Azure and GCS drivers, whose SDKs
# make most of its cold build.
build_registry() {
  local src="${BUILD}/registry-${REGISTRY_VERSION}"
  rm -rf "${src}"
  mkdir -p "${src}"
  cat >"${src}/main.go" <<'EOF'
package main

import (
	"os"

	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() {
	if err := registry.RootCmd.Execute(); err != nil {
		os.Exit(1)
	}
}
EOF
  (
    cd "${src}"
    go mod init local/registry >/dev/null 2>&1
    go get "github.com/distribution/distribution/v3@${REGISTRY_VERSION}" >/dev/null 2>&1
    go mod tidy >/dev/null
    go build -trimpath -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=${REGISTRY_VERSION}" \
      -o "${BIN}/registry" .
  )
  rm -rf "${src}"
}

build etcd "${ETCD_VERSION}" build_etcd etcd
build kwok "${KWOK_VERSION}" build_kwok kwok
build coredns "${COREDNS_VERSION}" build_coredns coredns
build registry "${REGISTRY_VERSION}" build_registry registry
# the stamp carries the binary list, so a checkout that adds one rebuilds
build kubernetes "${K8S_VERSION}-node" build_kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl \
  kubelet kube-proxy
