#!/usr/bin/env bash
# Installs the base toolchain into .tools/ (ignored), at pinned versions:
#   - Debian packages, only when missing: mariadb-server and redis-server
#     (their services are never started: the tests run mariadbd and
#     redis-server themselves), openssl (the control
#     plane's certificates), php-cli, apache2 and nginx-light (the chart tests
#     run the rendered init script and web server configs through them; their
#     services are never started either), the PHP extensions, mod_php, curl,
#     bubblewrap and iproute2 of tests/genuine, and the shell linter shellcheck;
#   - helm, helm-unittest (as the helm plugin `unittest`), ct,
#     actionlint (GitHub workflows), helmfile and helm-diff (as the helm plugin
#     `diff`, which `helmfile apply` runs), built from their Go modules into
#     .tools/bin;
#   - ct's chart_schema.yaml and lintconf.yaml into .tools/etc;
#   - the virtualenv .tools/venv from requirements-dev.txt (which includes
#     tools/release-requirements.txt: cyclonedx-py for tools/release.sh), plus
#     `-e ./hooks` when hooks/pyproject.toml exists.
# Each step leaves a stamp in .tools/stamps keyed by its version (or by the
# hash of the file it installs from), so a second run is a no-op of seconds.
# Go's build and module caches stay in Go's default global locations, so a
# second clone on the same machine reuses them.
# Called by `./dev tools`; the versions live here only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

HELM_VERSION=v3.17.4
HELM_UNITTEST_VERSION=v1.0.3
CT_VERSION=v3.13.0
ACTIONLINT_VERSION=v1.7.12
HELMFILE_VERSION=v1.8.0
HELM_DIFF_VERSION=v3.9.14
# The public checksum database has no record of chart-testing on this
# workplace's module proxy, so its download is checked against this pin.
CT_MODULE_SUM="h1:jww7UnQQQ3arcL4+qLnLep8yf0ls4vYZX9WtK9xPCDA="
# Likewise helm-diff (the newest version the module proxy here serves).
HELM_DIFF_MODULE_SUM="h1:pguvdUgk6UQeCL6xXZ2zIWYqbMi3Z0we2xmhAf3+G4g="
# tests/genuine runs genuine Matomo in the chart's pods: PHP 8.2 with the
# extensions Matomo needs, Apache with mod_php (the upstream image's
# apache2-foreground), curl (the helm test pod), bubblewrap and iproute2 (a
# mount and a network namespace per container and pod). redis-server (with
# redis-cli): tests/chart runs the embedded Redis's rendered probe against it.
APT_PACKAGES=(mariadb-server shellcheck openssl php-cli apache2 nginx-light
  php8.2-mysql php8.2-gd php8.2-xml php8.2-mbstring php8.2-curl php8.2-zip php8.2-intl php8.2-bcmath
  libapache2-mod-php8.2 curl bubblewrap iproute2 redis-server)
# The real node of tests/node (tests/harness/node.py, tools/images/images.py):
# container runtime, CNI plugins, and what builds the local images (no registry).
APT_PACKAGES+=(containerd runc containernetworking-plugins iptables conntrack mmdebstrap buildah skopeo)

TOOLS="${ROOT}/.tools"
BIN="${TOOLS}/bin"
STAMPS="${TOOLS}/stamps"
mkdir -p "${BIN}" "${STAMPS}" "${TOOLS}/etc" "${TOOLS}/helm-plugins"

log() { printf '[tools] %s\n' "$*"; }
die() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

stamp_ok() { [[ -f "${STAMPS}/$1" ]]; }
# stamp names are "<tool>.<key>"; setting one removes the tool's older stamps
stamp_set_key() { rm -f "${STAMPS}/$1".*; : >"${STAMPS}/$1.$2"; }

# ---------------------------------------------------------------- Debian
install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${p}")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    sudo -n true 2>/dev/null || die "missing Debian packages ${missing[*]}: run ./dev tools as root (or apt-get install them)"
    sudo=(sudo -n)
  fi
  log "apt-get install ${missing[*]}"
  # Keep the packaged services stopped: the tests start mariadbd, redis-server
  # and etcd themselves on 127.0.0.1 with temporary data directories.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e "${policy}" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "${policy}" >/dev/null
    "${sudo[@]}" chmod 755 "${policy}"
    made_policy=1
  fi
  local rc=0
  {
    "${sudo[@]}" apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >"${TOOLS}/apt.log" 2>&1 || rc=$?
  if ((made_policy)); then "${sudo[@]}" rm -f "${policy}"; fi
  if ((rc != 0)); then
    tail -20 "${TOOLS}/apt.log" >&2
    die "apt-get install ${missing[*]} failed (log: .tools/apt.log)"
  fi
  # Belt and braces, where a service manager started them anyway.
  if command -v service >/dev/null 2>&1; then
    "${sudo[@]}" service mariadb stop >/dev/null 2>&1 || true
    "${sudo[@]}" service redis-server stop >/dev/null 2>&1 || true
    "${sudo[@]}" service apache2 stop >/dev/null 2>&1 || true
    "${sudo[@]}" service nginx stop >/dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------- Go
find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "Go (1.24 or newer) is needed to build helm and friends: none on PATH nor in /usr/local/go/bin"
  fi
}

# Directory of MODULE@VERSION in the module cache (downloads it when needed).
module_dir() {
  local out
  out="$("${GO}" mod download -json "$1" 2>&1)" || die "cannot download $1: ${out}"
  python3 -c 'import json,sys
d=json.loads(sys.argv[1])
if "Error" in d: sys.exit("module download failed: " + d["Error"])
print(d["Dir"]); print(d["Sum"])' "${out}"
}

# Only the directory. (Not `module_dir ... | head -1`: head may exit before
# the second line is written, and under pipefail that broken pipe fails the
# whole step, as it did in a cold build.)
module_path() {
  local out
  out="$(module_dir "$1")"
  printf '%s\n' "${out%%$'\n'*}"
}

build_helm() {
  local key="${HELM_VERSION}"
  if stamp_ok "helm.${key}" && [[ -x "${BIN}/helm" ]]; then return 0; fi
  log "building helm ${HELM_VERSION}"
  local dir k8s major minor
  dir="$(module_path "helm.sh/helm/v3@${HELM_VERSION}")"
  # The release build's ldflags: without them helm believes it talks to
  # Kubernetes 1.20 and refuses charts with kubeVersion >= 1.29.
  k8s="$(cd "${dir}" && "${GO}" list -f '{{.Version}}' -m k8s.io/client-go)" # v0.32.x
  k8s="${k8s#v0.}"
  major=1
  minor="${k8s%%.*}"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${major} -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${major} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}"
  (cd "${dir}" && CGO_ENABLED=0 "${GO}" build -trimpath -ldflags "${ld}" -o "${BIN}/helm" ./cmd/helm)
  stamp_set_key helm "${key}"
}

build_helm_unittest() {
  local key="${HELM_UNITTEST_VERSION}"
  local plugin="${TOOLS}/helm-plugins/unittest"
  if stamp_ok "helm-unittest.${key}" && [[ -x "${plugin}/untt" ]]; then return 0; fi
  log "building helm-unittest ${HELM_UNITTEST_VERSION}"
  local dir
  # `go install` refuses it (its go.mod has a replace directive): build the
  # downloaded module instead, as its own main module.
  dir="$(module_path "github.com/helm-unittest/helm-unittest@${HELM_UNITTEST_VERSION}")"
  mkdir -p "${plugin}"
  (cd "${dir}" && CGO_ENABLED=0 "${GO}" build -trimpath \
    -ldflags "-s -w -X github.com/helm-unittest/helm-unittest/internal/build.version=${HELM_UNITTEST_VERSION#v}" \
    -o "${plugin}/untt" ./cmd/helm-unittest)
  # `helm unittest` finds it through HELM_PLUGINS=.tools/helm-plugins (set by ./dev).
  cat >"${plugin}/plugin.yaml" <<EOF
name: "unittest"
version: "${HELM_UNITTEST_VERSION#v}"
usage: "unittest for helm charts"
description: "Unit test for helm chart in YAML with ease to keep your chart functional and robust."
ignoreFlags: false
command: "\$HELM_PLUGIN_DIR/untt"
EOF
  ln -sf ../helm-plugins/unittest/untt "${BIN}/helm-unittest"
  stamp_set_key helm-unittest "${key}"
}

build_ct() {
  local key="${CT_VERSION}"
  if stamp_ok "ct.${key}" && [[ -x "${BIN}/ct" && -f "${TOOLS}/etc/chart_schema.yaml" && -f "${TOOLS}/etc/lintconf.yaml" ]]; then
    return 0
  fi
  log "building ct (chart-testing) ${CT_VERSION}"
  local out dir sum
  # `go install ...@version` fails on it here (the proxy lists no versions and
  # the checksum database has no record), so: download without the checksum
  # database, check the pinned hash, build the module itself.
  out="$(GONOSUMDB=github.com/helm/chart-testing module_dir "github.com/helm/chart-testing/v3@${CT_VERSION}")"
  dir="$(sed -n 1p <<<"${out}")"
  sum="$(sed -n 2p <<<"${out}")"
  [[ "${sum}" == "${CT_MODULE_SUM}" ]] || die "chart-testing ${CT_VERSION}: module hash ${sum} is not the pinned ${CT_MODULE_SUM}"
  (cd "${dir}" && CGO_ENABLED=0 GONOSUMDB=github.com/helm/chart-testing "${GO}" build -trimpath \
    -ldflags "-s -w -X github.com/helm/chart-testing/v3/ct/cmd.Version=${CT_VERSION}" \
    -o "${BIN}/ct" ./ct)
  install -m 644 "${dir}/etc/chart_schema.yaml" "${dir}/etc/lintconf.yaml" "${TOOLS}/etc/"
  stamp_set_key ct "${key}"
}

# go_install <tool> <version> <package> <ldflags>: `go install <package>@<version>`
# into .tools/bin (stripped, plus <ldflags>), stamped by the version.
go_install() {
  local tool=$1 version=$2 package=$3 ldflags=$4
  if stamp_ok "${tool}.${version}" && [[ -x "${BIN}/${tool}" ]]; then return 0; fi
  log "building ${tool} ${version}"
  GOBIN="${BIN}" CGO_ENABLED=0 "${GO}" install -trimpath -ldflags "-s -w ${ldflags}" "${package}@${version}"
  stamp_set_key "${tool}" "${version}"
}

build_actionlint() {
  go_install actionlint "${ACTIONLINT_VERSION}" github.com/rhysd/actionlint/cmd/actionlint \
    "-X github.com/rhysd/actionlint.version=${ACTIONLINT_VERSION}"
}

# helmfile (examples/helmfile, tests/cluster/test_cluster_helmfile.py). Its
# go.mod has replace directives, so `go install` refuses it: build the
# downloaded module as its own main module.
build_helmfile() {
  local key="${HELMFILE_VERSION}"
  if stamp_ok "helmfile.${key}" && [[ -x "${BIN}/helmfile" ]]; then return 0; fi
  log "building helmfile ${HELMFILE_VERSION}"
  local dir
  dir="$(module_path "github.com/helmfile/helmfile@${HELMFILE_VERSION}")"
  (cd "${dir}" && CGO_ENABLED=0 "${GO}" build -trimpath \
    -ldflags "-s -w -X go.szostok.io/version.version=${HELMFILE_VERSION}" -o "${BIN}/helmfile" .)
  stamp_set_key helmfile "${key}"
}

# helm-diff, installed as the helm plugin `diff` in .tools/helm-plugins:
# `helmfile apply` diffs each release with it before upgrading.
build_helm_diff() {
  local key="${HELM_DIFF_VERSION}"
  local plugin="${TOOLS}/helm-plugins/diff"
  if stamp_ok "helm-diff.${key}" && [[ -x "${plugin}/bin/diff" ]]; then return 0; fi
  log "building helm-diff ${HELM_DIFF_VERSION}"
  local out dir sum
  out="$(GONOSUMDB=github.com/databus23/helm-diff module_dir "github.com/databus23/helm-diff/v3@${HELM_DIFF_VERSION}")"
  dir="$(sed -n 1p <<<"${out}")"
  sum="$(sed -n 2p <<<"${out}")"
  [[ "${sum}" == "${HELM_DIFF_MODULE_SUM}" ]] || die "helm-diff ${HELM_DIFF_VERSION}: module hash ${sum} is not the pinned ${HELM_DIFF_MODULE_SUM}"
  mkdir -p "${plugin}/bin"
  (cd "${dir}" && CGO_ENABLED=0 GONOSUMDB=github.com/databus23/helm-diff "${GO}" build -trimpath \
    -ldflags "-s -w -X github.com/databus23/helm-diff/v3/cmd.Version=${HELM_DIFF_VERSION#v}" \
    -o "${plugin}/bin/diff" .)
  # Not the module's plugin.yaml: its install hooks download a release binary.
  cat >"${plugin}/plugin.yaml" <<EOF
name: "diff"
version: "${HELM_DIFF_VERSION#v}"
usage: "Preview helm upgrade changes as a diff"
description: "Preview helm upgrade changes as a diff"
useTunnel: true
command: "\$HELM_PLUGIN_DIR/bin/diff"
EOF
  stamp_set_key helm-diff "${key}"
}

# ---------------------------------------------------------------- Python
hash_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

install_venv() {
  local venv="${TOOLS}/venv" py="${PYTHON:-python3}" pyver key
  pyver="$("${py}" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
  key="py${pyver}-$(hash_of requirements-dev.txt tools/release-requirements.txt)"
  if ! stamp_ok "venv.${key}" || [[ ! -x "${venv}/bin/python" ]]; then
    if [[ ! -x "${venv}/bin/python" ]] || [[ "$("${venv}/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" != "${pyver}" ]]; then
      log "creating .tools/venv (Python ${pyver})"
      rm -rf "${venv}"
      "${py}" -m venv "${venv}"
    fi
    log "pip install -r requirements-dev.txt"
    "${venv}/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
    stamp_set_key venv "${key}"
    rm -f "${STAMPS}"/hooks.* # the hook package goes in again on top
  fi
  if [[ -f hooks/pyproject.toml ]]; then
    key="$(hash_of hooks/pyproject.toml)"
    if ! stamp_ok "hooks.${key}"; then
      log "pip install -e ./hooks"
      "${venv}/bin/python" -m pip install -q --disable-pip-version-check -e ./hooks
      stamp_set_key hooks "${key}"
    fi
  fi
}

main() {
  local t0=${SECONDS}
  install_apt
  # --apt-only: the Debian packages alone (./dev test starts the image builds
  # of tests/node on them while the Go builds below run)
  if [[ "${1:-}" == --apt-only ]]; then return 0; fi
  GO="$(find_go)"
  local step
  for step in build_helm build_helm_unittest build_ct build_actionlint build_helm_diff build_helmfile install_venv; do
    timed "${step}"
  done
  log "base toolchain ready ($((SECONDS - t0)) s)"
}

# timed STEP: runs STEP and, when it did something (a cold build), says how long it took
# (CONTRIBUTING.md's table of cold build times is made of these lines).
timed() {
  local t=${SECONDS}
  "$1"
  if ((SECONDS - t > 0)); then log "${1#build_}: $((SECONDS - t)) s"; fi
}

main "$@"
