#!/usr/bin/env bash
# Publishes the chart's release artifacts to an OCI registry: the hook image
# (hooks/Dockerfile) and the chart itself. ONE script for every publisher: the
# release workflow (.github/workflows/release.yaml) runs it against ghcr.io,
# tests/node/test_node_release.py against a local registry on the test node,
# and a user against theirs (README: "Installing from a clone").
#
# Usage: tools/release.sh [COMMAND] [OPTIONS]
#   image   build the hook image for each platform with buildah, put its SBOM
#           in it, label it, push it (one multi-platform index) to
#           REGISTRY/OWNER/matomo-hook:VERSION
#   chart   helm package charts/matomo, helm push it to oci://REGISTRY/OWNER/charts
#           (installable as oci://REGISTRY/OWNER/charts/matomo --version VERSION)
#   all     image, then chart (the default)
#   refs    print what it would push, build nothing
# Options (each also read from the environment variable named after it):
#   --registry HOST[:PORT]  RELEASE_REGISTRY    default ghcr.io
#   --owner NAME            RELEASE_OWNER       default matomo-k8s (so that the
#                           image is the chart's default hook.image.repository)
#   --version V             RELEASE_VERSION     default the chart's version; any
#                           other value is refused (the chart runs the hook
#                           image tagged with its own version)
#   --platforms LIST        RELEASE_PLATFORMS   default this machine's, e.g.
#                           linux/amd64,linux/arm64 (others need qemu binfmt)
#   --base-image REF        RELEASE_BASE_IMAGE  hooks/Dockerfile's PYTHON_IMAGE
#                           (default: the Dockerfile's own, as docker.io/...)
#   --source URL            RELEASE_SOURCE_URL  the repository's web address for
#                           org.opencontainers.image.source (default: from the
#                           `origin` remote)
#   --out DIR               RELEASE_OUT         SBOMs and the chart package (default
#                           dist; relative paths are from the repository)
#   --ca-bundle FILE        RELEASE_CA_BUNDLE   mounted as the CA bundle of the
#                           build's RUN steps only (pip behind a TLS-inspecting
#                           proxy); never part of the image
#   --plain-http            RELEASE_PLAIN_HTTP=1  the registry speaks plain HTTP
#                           (a local test registry only)
# Needs buildah and python3 3.11+ with venv (image), helm 3.13+ (chart); `./dev
# tools` installs them all. cyclonedx-py is taken from PATH (./dev tools puts it
# in .tools/venv), else installed once, at the version pinned in
# tools/release-requirements.txt, into .tools/release-venv. Log in first
# (`buildah login REGISTRY`, `helm registry login REGISTRY`); this script never
# handles credentials.
#
# The image carries the OCI labels org.opencontainers.image.{title,
# description,version,revision,created,source,licenses} and a CycloneDX SBOM
# of its Python environment at /usr/share/doc/matomo-hook/sbom.cdx.json
# (made by cyclonedx-py from the built image's files); a copy per platform is
# written to OUT/matomo-hook-VERSION-OS-ARCH.cdx.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

CHART=charts/matomo
SBOM_PATH=/usr/share/doc/matomo-hook/sbom.cdx.json

log() { printf '[release] %s\n' "$*" >&2; }
die() {
  printf '[release] ERROR: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,47p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

chart_field() { sed -n "s/^$1:[[:space:]]*//p" "${CHART}/Chart.yaml" | tr -d "\"' "; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not on PATH: $2"
}

# The repository's web address from the `origin` remote (credentials dropped).
source_from_origin() {
  local url
  url="$(git config --get remote.origin.url 2>/dev/null || true)"
  url="${url%.git}"
  case "${url}" in
    https://* | http://*)
      url="${url#*://}"
      printf 'https://%s\n' "${url#*@}"
      ;;
    ssh://*)
      url="${url#ssh://}"
      url="${url#*@}"
      printf 'https://%s\n' "${url/:[0-9]*\//\/}"
      ;;
    *@*:*)
      url="${url#*@}"
      printf 'https://%s\n' "${url/://}"
      ;;
    *) return 1 ;;
  esac
}

host_platform() {
  case "$(uname -m)" in
    x86_64) echo linux/amd64 ;;
    aarch64 | arm64) echo linux/arm64 ;;
    *) die "no default platform for $(uname -m): pass --platforms linux/ARCH" ;;
  esac
}

# pyproject_field KEY: the hook package's description or license (text).
pyproject_field() {
  python3 - "$1" <<'EOF'
import sys, tomllib
project = tomllib.load(open("hooks/pyproject.toml", "rb"))["project"]
value = project[sys.argv[1]]
print(value["text"] if isinstance(value, dict) else value)
EOF
}

# ------------------------------------------------------------------ options
COMMAND=all
REGISTRY="${RELEASE_REGISTRY:-ghcr.io}"
OWNER="${RELEASE_OWNER:-matomo-k8s}"
VERSION="${RELEASE_VERSION:-}"
PLATFORMS="${RELEASE_PLATFORMS:-}"
BASE_IMAGE="${RELEASE_BASE_IMAGE:-}"
SOURCE_URL="${RELEASE_SOURCE_URL:-}"
OUT="${RELEASE_OUT:-dist}"
CA_BUNDLE="${RELEASE_CA_BUNDLE:-}"
PLAIN_HTTP="${RELEASE_PLAIN_HTTP:-0}"

parse_args() {
  if (($#)) && [[ "$1" != -* ]]; then
    COMMAND="$1"
    shift
  fi
  while (($#)); do
    case "$1" in
      --registry | --owner | --version | --platforms | --base-image | --source | --out | --ca-bundle)
        (($# >= 2)) || die "$1 needs a value"
        case "$1" in
          --registry) REGISTRY="$2" ;;
          --owner) OWNER="$2" ;;
          --version) VERSION="$2" ;;
          --platforms) PLATFORMS="$2" ;;
          --base-image) BASE_IMAGE="$2" ;;
          --source) SOURCE_URL="$2" ;;
          --out) OUT="$2" ;;
          --ca-bundle) CA_BUNDLE="$2" ;;
        esac
        shift 2
        ;;
      --plain-http)
        PLAIN_HTTP=1
        shift
        ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) die "unknown option $1 (tools/release.sh --help lists them)" ;;
    esac
  done
  case "${COMMAND}" in
    image | chart | all | refs | __sbom) ;;
    *) die "unknown command ${COMMAND}: image, chart, all or refs" ;;
  esac

  local chart_version
  chart_version="$(chart_field version)"
  [[ -n "${chart_version}" ]] || die "no version in ${CHART}/Chart.yaml"
  if [[ -z "${VERSION}" ]]; then
    VERSION="${chart_version}"
  elif [[ "${VERSION}" != "${chart_version}" ]]; then
    die "version ${VERSION} (--version / RELEASE_VERSION) is not the chart's version ${chart_version}: the chart runs" \
      "the hook image tagged with its own version, so set version: ${VERSION} in ${CHART}/Chart.yaml (and its" \
      "CHANGELOG.md section) instead"
  fi
  [[ "${OWNER}" == "${OWNER,,}" ]] || die "owner ${OWNER} (--owner / RELEASE_OWNER) has upper-case letters: OCI" \
    "repository names are lower case, use ${OWNER,,}"
  [[ "${REGISTRY}" != */* ]] || die "registry ${REGISTRY} (--registry / RELEASE_REGISTRY) is a host[:port] only;" \
    "put the path in --owner"
  [[ "${PLAIN_HTTP}" == 0 || "${PLAIN_HTTP}" == 1 ]] || die "RELEASE_PLAIN_HTTP=${PLAIN_HTTP}: 0 or 1"
  IMAGE="${REGISTRY}/${OWNER}/matomo-hook:${VERSION}"
  CHART_REPO="oci://${REGISTRY}/${OWNER}/charts"
}

# ------------------------------------------------------------------- image
# The SBOM of a built container's Python environment (/opt/venv): cyclonedx-py
# reads the image's site-packages through a host interpreter whose only
# site-packages entry is that folder (a .pth file), so nothing of this machine's
# own Python environments is listed. Rootless, mounting needs buildah's user
# namespace: `buildah unshare tools/release.sh __sbom --sbom-of CTR OUT` runs it.
sbom_of() {
  local ctr="$1" out="$2" mnt tmp site
  mnt="$(buildah mount "${ctr}")"
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the trap runs after the locals are gone
  trap "buildah umount '${ctr}' >/dev/null; rm -rf '${tmp}'; trap - RETURN" RETURN
  local sites=("${mnt}"/opt/venv/lib/python3*/site-packages)
  if ((${#sites[@]} != 1)) || [[ ! -d "${sites[0]}" ]]; then
    die "no single /opt/venv/lib/python3*/site-packages in the image (hooks/Dockerfile installs the hook there)"
  fi
  site="${sites[0]}"
  python3 -m venv --without-pip "${tmp}/env"
  local own
  own="$("${tmp}/env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf '%s\n' "${site}" >"${own}/image-site-packages.pth"
  cyclonedx-py environment --pyproject hooks/pyproject.toml --mc-type application \
    --output-format JSON --output-file "${out}" "${tmp}/env/bin/python"
}

# cyclonedx-py on PATH, else the pinned one of tools/release-requirements.txt in
# .tools/release-venv (made here once, from PyPI).
ensure_cyclonedx() {
  command -v cyclonedx-py >/dev/null 2>&1 && return 0
  local venv="${ROOT}/.tools/release-venv" key
  key="$(sha256sum tools/release-requirements.txt | cut -c1-16)"
  if [[ ! -x "${venv}/bin/cyclonedx-py" || ! -f "${venv}/.requirements-${key}" ]]; then
    log "installing cyclonedx-py (tools/release-requirements.txt) into .tools/release-venv"
    rm -rf "${venv}"
    python3 -m venv "${venv}" >&2 || die "python3 -m venv failed: install the venv module (Debian/Ubuntu: apt-get install python3-venv)"
    "${venv}/bin/python" -m pip install -q --disable-pip-version-check -r tools/release-requirements.txt >&2 ||
      die "pip install -r tools/release-requirements.txt failed (see above)"
    : >"${venv}/.requirements-${key}"
  fi
  export PATH="${venv}/bin:${PATH}"
}

# hooks/Dockerfile's default PYTHON_IMAGE, fully qualified: buildah resolves a
# short name through registries.conf, which differs between machines (GitHub's
# runners have no search registry), while docker reads it as docker.io's.
default_base_image() {
  local ref first
  ref="$(sed -n 's/^ARG PYTHON_IMAGE=//p' hooks/Dockerfile)"
  [[ -n "${ref}" ]] || die "no ARG PYTHON_IMAGE=... in hooks/Dockerfile: pass --base-image"
  first="${ref%%/*}"
  if [[ "${ref}" != */* ]]; then
    ref="docker.io/library/${ref}"
  elif [[ "${first}" != *.* && "${first}" != *:* && "${first}" != localhost ]]; then
    ref="docker.io/${ref}"
  fi
  printf '%s\n' "${ref}"
}

build_image() {
  need buildah "install it (Debian/Ubuntu: apt-get install buildah; ./dev tools does)"
  need python3 "install Python 3.11 or newer"
  ensure_cyclonedx
  local tls=() revision created source licenses description
  ((PLAIN_HTTP)) && tls=(--tls-verify=false)
  revision="$(git rev-parse HEAD 2>/dev/null)" || die "not a git checkout: the image's revision label needs one"
  if [[ -n "$(git status --porcelain -- hooks 2>/dev/null)" ]]; then
    log "WARNING: hooks/ has uncommitted changes: the image is built from them, its revision label names ${revision}"
  fi
  created="$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)"
  source="${SOURCE_URL}"
  if [[ -z "${source}" ]]; then
    source="$(source_from_origin)" || die "cannot tell the repository's web address from the origin remote: pass" \
      "--source URL (RELEASE_SOURCE_URL), e.g. https://github.com/${OWNER}/matomo-k8s"
  fi
  licenses="$(pyproject_field license)"
  description="$(pyproject_field description)"
  local labels=(
    "org.opencontainers.image.title=matomo-hook"
    "org.opencontainers.image.description=${description}"
    "org.opencontainers.image.version=${VERSION}"
    "org.opencontainers.image.revision=${revision}"
    "org.opencontainers.image.created=${created}"
    "org.opencontainers.image.source=${source}"
    "org.opencontainers.image.licenses=${licenses}"
  )
  local label_args=() l
  for l in "${labels[@]}"; do label_args+=(--label "${l}"); done

  [[ -n "${BASE_IMAGE}" ]] || BASE_IMAGE="$(default_base_image)"
  mkdir -p "${OUT}"
  local list="localhost/matomo-hook-release:${VERSION}" platform arch build_ref final_ref ctr sbom platforms=()
  buildah manifest rm "${list}" >/dev/null 2>&1 || true
  buildah manifest create "${list}" >/dev/null
  IFS=, read -r -a platforms <<<"${PLATFORMS:-$(host_platform)}"
  for platform in "${platforms[@]}"; do
    arch="${platform//\//-}"
    build_ref="localhost/matomo-hook-build:${VERSION}-${arch}"
    final_ref="localhost/matomo-hook:${VERSION}-${arch}"
    log "building ${platform} from hooks/Dockerfile (PYTHON_IMAGE=${BASE_IMAGE})"
    local build=(build --platform "${platform}" --layers=false "${tls[@]}" -f hooks/Dockerfile -t "${build_ref}"
      --build-arg "PYTHON_IMAGE=${BASE_IMAGE}")
    if [[ -n "${CA_BUNDLE}" ]]; then
      [[ -f "${CA_BUNDLE}" ]] || die "CA bundle ${CA_BUNDLE} (--ca-bundle / RELEASE_CA_BUNDLE) is not a file"
      build+=(--volume "${CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro")
    fi
    buildah "${build[@]}" hooks >&2
    ctr="$(buildah from --pull=false "${build_ref}")"
    sbom="${OUT}/matomo-hook-${VERSION}-${arch}.cdx.json"
    log "SBOM of ${platform} -> ${sbom} and ${SBOM_PATH} in the image"
    if [[ "$(id -u)" == 0 ]]; then
      sbom_of "${ctr}" "${sbom}"
    else # mounting needs buildah's user namespace
      buildah unshare bash "${BASH_SOURCE[0]}" __sbom --sbom-of "${ctr}" "${sbom}"
    fi
    buildah copy --chown 0:0 --chmod 0644 "${ctr}" "${sbom}" "${SBOM_PATH}" >/dev/null
    buildah config "${label_args[@]}" "${ctr}"
    buildah commit --quiet --rm "${ctr}" "${final_ref}" >/dev/null
    buildah rmi "${build_ref}" >/dev/null
    buildah manifest add "${list}" "containers-storage:${final_ref}" >/dev/null
  done
  log "pushing ${IMAGE} (${platforms[*]})"
  buildah manifest push --all "${tls[@]}" --digestfile "${OUT}/matomo-hook.digest" "${list}" "docker://${IMAGE}" >&2 ||
    die "pushing ${IMAGE} failed: log in first (buildah login ${REGISTRY}) with the right to write ${OWNER}/matomo-hook"
  log "pushed ${IMAGE}@$(cat "${OUT}/matomo-hook.digest")"
  local default
  default="$(sed -n '/^hook:/,/^[a-z]/s/^    repository:[[:space:]]*//p' "${CHART}/values.yaml")"
  if [[ "${default}:${VERSION}" != "${IMAGE}" ]]; then
    log "the chart's default hook image is ${default}:${VERSION}: install with" \
      "--set hook.image.repository=${REGISTRY}/${OWNER}/matomo-hook"
  fi
}

# ------------------------------------------------------------------- chart
push_chart() {
  need helm "run ./dev tools (helm in .tools/bin, then eval \"\$(./dev env)\"), or install helm 3.13+"
  mkdir -p "${OUT}"
  local plain=()
  ((PLAIN_HTTP)) && plain=(--plain-http)
  helm package "${CHART}" --destination "${OUT}" >&2
  log "pushing ${CHART_REPO}/matomo:${VERSION}"
  helm push "${OUT}/matomo-${VERSION}.tgz" "${CHART_REPO}" "${plain[@]}" >&2 ||
    die "pushing the chart to ${CHART_REPO} failed: log in first (helm registry login ${REGISTRY})"
  log "install with: helm install matomo ${CHART_REPO}/matomo --version ${VERSION}"
}

main() {
  parse_args "$@"
  case "${COMMAND}" in
    refs)
      printf 'image %s\nchart %s/matomo --version %s\n' "${IMAGE}" "${CHART_REPO}" "${VERSION}"
      ;;
    __sbom) sbom_of "${SBOM_CTR}" "${SBOM_OUT}" ;;
    image) build_image ;;
    chart) push_chart ;;
    all)
      build_image
      push_chart
      ;;
  esac
}

# The internal __sbom command takes the container and the output file.
if [[ "${1:-}" == __sbom ]]; then
  [[ "${2:-}" == --sbom-of && $# -eq 4 ]] || die "usage: release.sh __sbom --sbom-of CONTAINER OUT"
  SBOM_CTR="$3"
  SBOM_OUT="$4"
  set -- __sbom
fi
main "$@"
