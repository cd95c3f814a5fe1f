#!/usr/bin/env python3
"""Local container images for the real node of tests/node, with no registry.

Every image is built here from Debian packages (mmdebstrap), the genuine
Matomo release tarballs and the project's own files, written as a
docker-archive tarball, and loaded into the node's containerd with
`ctr -n k8s.io images import` (tests/harness/node.py). Archives are cached in
$MATOMO_IMAGE_CACHE (default .tools/images) under a key that hashes every
input (package lists, scripts, tarballs, hooks/ sources): a second run
rebuilds nothing, a changed input rebuilds only what depends on it.

    python3 tools/images/images.py build [NAME ...]   # build (or find cached) archives, print their paths
    python3 tools/images/images.py list               # names, references, cache keys

Names: matomo (matomo:5.1.2-apache, -fpm, 5.0.3-apache, -fpm), mariadb, nginx, redis,
cloud-sql-proxy (the real Cloud SQL Auth Proxy v2 built from its Go module at
the chart's default tag), cloudsql-instance (cloudsql-instance.go: Google's
side of one instance for it), pause, python (the hook's base), hook
(hooks/Dockerfile through buildah), queuedtracking (the genuine QueuedTracking
plugin at /plugins/QueuedTracking over Debian's static busybox: a plugin image
of the chart's plugins.extra). What each reproduces of its upstream
image: tools/images/README.md.
Needs root (mmdebstrap in root mode, buildah), Debian's package mirror and the
Go module proxy.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("MATOMO_IMAGE_CACHE", REPO / ".tools" / "images"))
MATOMO_TARBALLS = Path(os.environ.get("MATOMO_TARBALLS", REPO.parent / "shared" / "matomo"))
PLUGIN_TARBALLS = Path(os.environ.get("MATOMO_PLUGIN_TARBALLS", REPO.parent / "shared" / "plugins"))
SUITE = "bookworm"
MIRRORS = [
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
]
# Bump to rebuild everything (a change of this file's logic that the keys do not see).
RECIPE_VERSION = "1"

MATOMO_VERSIONS = ("5.1.2", "5.0.3")
MARIADB = "localhost/matomo-test/mariadb:10.11"
NGINX = "localhost/matomo-test/nginx-unprivileged:1.22"
REDIS = "localhost/matomo-test/redis:7.0"
# The real Cloud SQL Auth Proxy v2, built from its Go module at the version of
# the chart's default image tag and stored under the chart's default reference
# (like the matomo and hook images): a bump of the chart's default rebuilds it.
PROXY_MODULE = "github.com/GoogleCloudPlatform/cloud-sql-proxy/v2"
INSTANCE = "localhost/matomo-test/cloudsql-instance:1"
PAUSE = "localhost/matomo-test/pause:1"
PYTHON = "localhost/matomo-test/python:3.11-bookworm"
HOOK_REPOSITORY = "ghcr.io/matomo-k8s/matomo-hook"
# Plugin images of the chart's plugins.extra: (name, version) of ../shared/plugins/<name>-<version>.tar.gz
PLUGINS = {"queuedtracking": ("QueuedTracking", "5.1.1")}


def plugin_ref(image: str) -> str:
    name, version = PLUGINS[image]
    return f"localhost/matomo-test/{name.lower()}:{version}"

PHP_PACKAGES = [
    "apache2", "libapache2-mod-php8.2", "php8.2-fpm", "php8.2-cli",
    "php8.2-mysql", "php8.2-gd", "php8.2-xml", "php8.2-mbstring", "php8.2-curl", "php8.2-zip",
    "php8.2-intl", "php8.2-opcache", "php8.2-bcmath", "php8.2-ldap", "php-apcu", "php-redis",
    "curl", "ca-certificates",
]
# docs, man pages and translations are never read in a container
DPKG_EXCLUDES = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
                 "/usr/share/lintian/*"]


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def key_of(*parts: object) -> str:
    h = hashlib.sha256(RECIPE_VERSION.encode())
    for p in parts:
        if isinstance(p, Path):
            if p.is_dir():
                for f in sorted(x for x in p.rglob("*") if x.is_file() and "__pycache__" not in x.parts
                                and not x.name.endswith(".egg-info") and ".egg-info" not in str(x)):
                    h.update(str(f.relative_to(p)).encode())
                    h.update(sha256_file(f).encode())
            else:
                h.update(sha256_file(p).encode())
        else:
            h.update(json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


def cached(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """CACHE/name-key.tar, built by build(tmp_path) unless it exists; older keys of name removed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{name}-{key}.tar"
    if out.exists():
        return out
    # One builder per name at a time: ./dev test builds the images in the
    # background while the node's fixture may ask for the same ones.
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        return _build_locked(name, key, out, build)


def _build_locked(name: str, key: str, out: Path, build: Callable[[Path], None]) -> Path:
    t0 = time.monotonic()
    log(f"building {name} ({key})")
    tmp = CACHE / f".{name}-{key}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        build(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for old in CACHE.glob(f"{name}-*.tar"):
        old.unlink()
    tmp.rename(out)
    log(f"built {name} in {time.monotonic() - t0:.0f}s ({out.stat().st_size >> 20} MiB)")
    return out


# ----------------------------------------------------------------- layers
def add_user(name: str, uid: int, home: str) -> str:
    """An essential hook adding a system user and group with a fixed id (passwd is not installed yet)."""
    return (f"echo '{name}:x:{uid}:' >>\"$1\"/etc/group && echo '{name}:!::' >>\"$1\"/etc/gshadow && "
            f"echo '{name}:x:{uid}:{uid}::{home}:/usr/sbin/nologin' >>\"$1\"/etc/passwd && "
            f"echo '{name}:!:1::::::' >>\"$1\"/etc/shadow")


def mmdebstrap_layer(out: Path, packages: list[str], customize: list[str], essential: list[str] = (),
                     variant: str = "minbase") -> None:
    argv = ["mmdebstrap", f"--variant={variant}", "--mode=root", "--format=tar", "--quiet",
            f"--include={','.join(packages)}", "--aptopt=Acquire::Retries \"3\";"]
    argv += [f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES]
    argv += ["--dpkgopt=path-include=/usr/share/doc/*/copyright"]
    argv += [f"--essential-hook={h}" for h in essential]
    argv += [f"--customize-hook={h}" for h in customize]
    # no apt state, logs or caches in the image
    argv += ["--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/* \"$1\"/var/log/*.log "
             "\"$1\"/var/log/apt \"$1\"/var/cache/ldconfig/aux-cache"]
    argv += [SUITE, str(out), *MIRRORS]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)


def files_layer(out: Path, files: dict[str, tuple[bytes, int]], dirs: dict[str, int] | None = None,
                links: dict[str, str] | None = None) -> None:
    """A layer of files: {path in image: (content, mode)}, root-owned; dirs {path: mode}; symbolic
    links {path: target}."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        seen: set[str] = set()

        def add_dir(path: str, mode: int = 0o755) -> None:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d and d not in seen:
                    seen.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = mode if i == len(parts) else 0o755
                    tf.addfile(ti)

        for d, mode in (dirs or {}).items():
            add_dir(d, mode)
        for path, (content, mode) in sorted(files.items()):
            p = path.strip("/")
            if "/" in p:
                add_dir(p.rsplit("/", 1)[0])
            ti = tarfile.TarInfo(p)
            ti.size = len(content)
            ti.mode = mode
            tf.addfile(ti, io.BytesIO(content))
        for path, target in sorted((links or {}).items()):
            p = path.strip("/")
            if "/" in p:
                add_dir(p.rsplit("/", 1)[0])
            ti = tarfile.TarInfo(p)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            ti.mode = 0o777
            tf.addfile(ti)


def matomo_code_layer(out: Path, version: str) -> None:
    """usr/src/matomo from the release tarball (top folder matomo/), owned by www-data (33:33)."""
    src = MATOMO_TARBALLS / f"matomo-{version}.tar.gz"
    with tarfile.open(src, "r:gz") as tin, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tout:
        for d in ("usr", "usr/src"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tout.addfile(ti)
        for m in tin:
            name = m.name.lstrip("./")
            if name != "matomo" and not name.startswith("matomo/"):
                raise RuntimeError(f"{src}: unexpected member {m.name}")
            m.name = "usr/src/" + name
            m.uid = m.gid = 33
            m.uname = m.gname = "www-data"
            if m.islnk():
                m.linkname = "usr/src/" + m.linkname.lstrip("./")
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)


def plugin_layer(out: Path, archive: Path, name: str) -> None:
    """plugins/<name> from a plugin archive unpacking into <name>/ (../shared/plugins/), owned by
    root and world-readable: the chart's init container copies it as Matomo's user (uid 33)."""
    with tarfile.open(archive, "r:gz") as tin, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tout:
        ti = tarfile.TarInfo("plugins")
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        tout.addfile(ti)
        for m in tin:
            member = m.name.lstrip("./")
            if member != name and not member.startswith(f"{name}/"):
                raise RuntimeError(f"{archive}: unexpected member {m.name}")
            if not (m.isdir() or m.isreg() or m.issym()):
                raise RuntimeError(f"{archive}: {m.name} is neither a file, a folder nor a symlink")
            m.name = "plugins/" + member
            m.uid = m.gid = 0
            m.uname = m.gname = "root"
            m.mode = 0o755 if m.isdir() or m.mode & 0o111 else 0o644
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)


# ---------------------------------------------------------------- archives
@dataclass
class Image:
    ref: str
    layers: list[Path]
    config: dict[str, object] = field(default_factory=dict)


def normalize(ref: str) -> str:
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{ref}"
    return ref


def write_archive(out: Path, images: list[Image]) -> None:
    """A docker-archive (docker save format) holding every image; shared layers stored once."""
    diff_ids: dict[Path, str] = {}
    for img in images:
        for layer in img.layers:
            if layer not in diff_ids:
                diff_ids[layer] = "sha256:" + sha256_file(layer)
    manifest = []
    with tarfile.open(out, "w") as tf:
        for layer, digest in diff_ids.items():
            tf.add(layer, arcname=f"{digest[7:]}/layer.tar")
        for img in images:
            cfg = {
                "architecture": "amd64", "os": "linux",
                "created": "1970-01-01T00:00:00Z",
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                           **img.config},
                "rootfs": {"type": "layers", "diff_ids": [diff_ids[layer] for layer in img.layers]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"tools/images/images.py {p.name}"}
                            for p in img.layers],
            }
            raw = json.dumps(cfg, sort_keys=True).encode()
            cfg_name = hashlib.sha256(raw).hexdigest() + ".json"
            ti = tarfile.TarInfo(cfg_name)
            ti.size = len(raw)
            tf.addfile(ti, io.BytesIO(raw))
            manifest.append({"Config": cfg_name, "RepoTags": [normalize(img.ref)],
                             "Layers": [f"{diff_ids[layer][7:]}/layer.tar" for layer in img.layers]})
        raw = json.dumps(manifest).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(raw)
        tf.addfile(ti, io.BytesIO(raw))


# ------------------------------------------------------------------ images
def layer_php() -> Path:
    script = HERE / "rootfs-php.sh"
    return cached("layer-php", key_of(PHP_PACKAGES, DPKG_EXCLUDES, MIRRORS, script),
                  lambda out: mmdebstrap_layer(out, PHP_PACKAGES, [f'sh {script} "$1"']))


def layer_matomo(version: str) -> Path:
    src = MATOMO_TARBALLS / f"matomo-{version}.tar.gz"
    if not src.exists():
        raise SystemExit(f"no Matomo {version} release tarball at {src} (MATOMO_TARBALLS)")
    return cached(f"layer-matomo-{version}", key_of("matomo-code", src),
                  lambda out: matomo_code_layer(out, version))


def matomo_images() -> list[Image]:
    php = layer_php()
    images = []
    for v in MATOMO_VERSIONS:
        code = layer_matomo(v)
        base = {"WorkingDir": "/var/www/html", "Entrypoint": ["/entrypoint.sh"],
                "Volumes": {"/var/www/html": {}}}
        images.append(Image(f"matomo:{v}-apache", [php, code],
                            {**base, "Cmd": ["apache2-foreground"], "ExposedPorts": {"80/tcp": {}},
                             "StopSignal": "SIGWINCH"}))
        images.append(Image(f"matomo:{v}-fpm", [php, code],
                            {**base, "Cmd": ["php-fpm"], "ExposedPorts": {"9000/tcp": {}},
                             "StopSignal": "SIGQUIT"}))
    return images


def build_matomo() -> Path:
    images = matomo_images()
    key = key_of([(i.ref, [p.name for p in i.layers], i.config) for i in images])
    return cached("matomo", key, lambda out: write_archive(out, images))


MARIADB_PACKAGES = ["mariadb-server", "mariadb-client", "procps"]
MARIADB_CNF = b"""[mysqld]
# as the upstream image: every address of the pod, no name resolution
bind-address = 0.0.0.0
skip-name-resolve
host-cache-size = 0
socket = /run/mysqld/mysqld.sock
pid-file = /run/mysqld/mysqld.pid
[client-server]
socket = /run/mysqld/mysqld.sock
"""


def build_mariadb() -> Path:
    entry = HERE / "mariadb-entrypoint.sh"
    # uid/gid 999 as in the upstream image (the chart's podSecurityContext says so)
    essential = [add_user("mysql", 999, "/var/lib/mysql")]
    customize = ['rm -rf "$1"/var/lib/mysql && mkdir -p "$1"/var/lib/mysql "$1"/run/mysqld '
                 '&& chown 999:999 "$1"/var/lib/mysql "$1"/run/mysqld']
    rootfs = cached("layer-mariadb", key_of(MARIADB_PACKAGES, DPKG_EXCLUDES, MIRRORS, essential, customize),
                    lambda out: mmdebstrap_layer(out, MARIADB_PACKAGES, customize, essential))
    extra = cached("layer-mariadb-entry", key_of(entry, MARIADB_CNF.decode()), lambda out: files_layer(out, {
        "usr/local/bin/docker-entrypoint.sh": (entry.read_bytes(), 0o755),
        "etc/mysql/mariadb.conf.d/99-container.cnf": (MARIADB_CNF, 0o644),
    }))
    img = Image(MARIADB, [rootfs, extra], {"Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["mariadbd"],
                                           "ExposedPorts": {"3306/tcp": {}}, "User": "999:999"})
    return cached("mariadb", key_of(img.ref, [p.name for p in img.layers], img.config),
                  lambda out: write_archive(out, [img]))


NGINX_PACKAGES = ["nginx-light"]
NGINX_CONF = b"""# as in nginxinc/nginx-unprivileged: no root, pid and temp files in /tmp
worker_processes auto;
error_log /dev/stderr notice;
pid /tmp/nginx.pid;
events { worker_connections 1024; }
http {
  client_body_temp_path /tmp/client_temp;
  proxy_temp_path /tmp/proxy_temp_path;
  fastcgi_temp_path /tmp/fastcgi_temp;
  uwsgi_temp_path /tmp/uwsgi_temp;
  scgi_temp_path /tmp/scgi_temp;
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  sendfile on;
  keepalive_timeout 65;
  include /etc/nginx/conf.d/*.conf;
}
"""


def build_nginx() -> Path:
    essential = [add_user("nginx", 101, "/nonexistent")]
    customize = ['rm -f "$1"/etc/nginx/sites-enabled/* && chmod 755 "$1"/var/log/nginx '
                 '&& ln -sfT /dev/stderr "$1"/var/log/nginx/error.log && ln -sfT /dev/stdout "$1"/var/log/nginx/access.log '
                 '&& mkdir -p "$1"/var/cache/nginx && chown 101:101 "$1"/var/cache/nginx']
    rootfs = cached("layer-nginx", key_of(NGINX_PACKAGES, DPKG_EXCLUDES, MIRRORS, essential, customize),
                    lambda out: mmdebstrap_layer(out, NGINX_PACKAGES, customize, essential))
    extra = cached("layer-nginx-conf", key_of(NGINX_CONF.decode()), lambda out: files_layer(
        out, {"etc/nginx/nginx.conf": (NGINX_CONF, 0o644)}, {"etc/nginx/conf.d": 0o755}))
    img = Image(NGINX, [rootfs, extra], {"Cmd": ["nginx", "-g", "daemon off;"], "User": "101",
                                         "ExposedPorts": {"8080/tcp": {}}, "StopSignal": "SIGQUIT"})
    return cached("nginx", key_of(img.ref, [p.name for p in img.layers], img.config),
                  lambda out: write_archive(out, [img]))


REDIS_PACKAGES = ["redis-server"]


def build_redis() -> Path:
    """Debian's redis-server 7.0 as the upstream `redis` image runs it: uid/gid 999 (`redis`), its data in
    /data, `redis-server` on PATH. The chart's StatefulSet brings its own redis.conf and command."""
    essential = [add_user("redis", 999, "/data")]
    customize = ['mkdir -p "$1"/data "$1"/run/redis && chown 999:999 "$1"/data "$1"/run/redis '
                 '&& chmod 750 "$1"/data']
    rootfs = cached("layer-redis", key_of(REDIS_PACKAGES, DPKG_EXCLUDES, MIRRORS, essential, customize),
                    lambda out: mmdebstrap_layer(out, REDIS_PACKAGES, customize, essential))
    img = Image(REDIS, [rootfs], {"Cmd": ["redis-server"], "User": "999:999", "WorkingDir": "/data",
                                  "ExposedPorts": {"6379/tcp": {}}})
    return cached("redis", key_of(img.ref, [p.name for p in img.layers], img.config),
                  lambda out: write_archive(out, [img]))


# passwd: hooks/Dockerfile runs groupadd/useradd (python:slim has them)
PYTHON_PACKAGES = ["python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates", "passwd"]


def layer_python() -> Path:
    return cached("layer-python", key_of(PYTHON_PACKAGES, DPKG_EXCLUDES, MIRRORS),
                  lambda out: mmdebstrap_layer(out, PYTHON_PACKAGES, []))


def build_python() -> Path:
    img = Image(PYTHON, [layer_python()], {"Cmd": ["python3"]})
    return cached("python", key_of(img.ref, [p.name for p in img.layers], img.config),
                  lambda out: write_archive(out, [img]))


def go_env() -> dict[str, str]:
    """Static binaries with the machine's toolchain, never another one downloaded."""
    return dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")


def go_binary() -> str:
    return shutil.which("go") or "/usr/local/go/bin/go"


def go_version() -> str:
    """The toolchain, part of the Go images' keys (a new toolchain rebuilds them)."""
    return subprocess.run([go_binary(), "env", "GOVERSION"], check=True, capture_output=True, text=True,
                          env=go_env()).stdout.strip()


def go_build_main(src: Path, module: str, out: Path) -> None:
    """One-file main package src (Go standard library only) built as the static binary out."""
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(src, Path(d) / "main.go")
        subprocess.run([go_binary(), "mod", "init", module], cwd=d, check=True, capture_output=True)
        subprocess.run([go_binary(), "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."], cwd=d,
                       env=go_env(), check=True)


def values_scalar(path: list[str]) -> str:
    """A scalar of charts/matomo/values.yaml by its keys, e.g. ["database", "cloudsql", "image", "tag"].

    A line reader for the block mappings of that file, not YAML: ./dev test starts the image builds with the
    system's python3 before the toolchain's venv (and its PyYAML) exists."""
    stack: list[tuple[int, str]] = []
    for line in (REPO / "charts" / "matomo" / "values.yaml").read_text().splitlines():
        body = line.lstrip(" ")
        if not body or body.startswith(("#", "-")) or ":" not in body:
            continue
        indent = len(line) - len(body)
        key, _, value = body.partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.strip()))
        if [k for _, k in stack] == path:
            value = value.split(" #", 1)[0].strip()
            if not value or value[0] in "{[|>&*":
                raise SystemExit(f"charts/matomo/values.yaml: {'.'.join(path)} is not a plain scalar")
            return value.strip("\"'")
    raise SystemExit(f"charts/matomo/values.yaml: no {'.'.join(path)}")


def chart_proxy_image() -> tuple[str, str]:
    """The chart's default Cloud SQL Auth Proxy image: (repository, tag)."""
    image = ["database", "cloudsql", "image"]
    return values_scalar([*image, "repository"]), values_scalar([*image, "tag"])


def proxy_ref() -> str:
    repository, tag = chart_proxy_image()
    return f"{repository}:{tag}"


# /etc/passwd and /etc/group of distroless/static:nonroot (what the upstream image runs on)
NONROOT_PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" \
    b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
NONROOT_GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


def build_proxy() -> Path:
    """The real proxy: `go install MODULE@v<chart default tag>`, CGO off, in an image like upstream's
    distroless one (binary at /cloud-sql-proxy, uid 65532, the binary as entrypoint)."""
    _, tag = chart_proxy_image()
    version = f"v{tag.removeprefix('v')}"
    # as upstream's image build stamps "container"; ours says where it was built
    ldflags = f"-s -w -X {PROXY_MODULE}/cmd.metadataString=container.matomo-test"
    ref = proxy_ref()

    def build(out: Path) -> None:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.monotonic()
            # outside any module: the proxy's own go.mod and go.sum decide every dependency
            subprocess.run([go_binary(), "install", "-trimpath", f"-ldflags={ldflags}", f"{PROXY_MODULE}@{version}"],
                           cwd=d, env=dict(go_env(), GOBIN=d), check=True)
            log(f"go install {PROXY_MODULE}@{version}: {time.monotonic() - t0:.0f}s")
            binary = (Path(d) / "cloud-sql-proxy").read_bytes()
            layer = Path(d) / "layer.tar"
            files_layer(layer, {"cloud-sql-proxy": (binary, 0o755), "etc/passwd": (NONROOT_PASSWD, 0o644),
                                "etc/group": (NONROOT_GROUP, 0o644)}, {"tmp": 0o1777})
            write_archive(out, [Image(ref, [layer], {"Entrypoint": ["/cloud-sql-proxy"], "User": "65532"})])

    return cached("cloud-sql-proxy", key_of(ref, PROXY_MODULE, version, ldflags, go_version(),
                                           NONROOT_PASSWD.decode(), NONROOT_GROUP.decode()), build)


def go_program_image(name: str, ref: str, user: str) -> Path:
    """An image of one Go program of the standard library, HERE/<name>.go, as /<name>, its entrypoint."""
    src = HERE / f"{name}.go"

    def build(out: Path) -> None:
        with tempfile.TemporaryDirectory() as d:
            binary = Path(d) / name
            go_build_main(src, f"local/{name}", binary)
            layer = Path(d) / "layer.tar"
            files_layer(layer, {name: (binary.read_bytes(), 0o755)})
            write_archive(out, [Image(ref, [layer], {"Entrypoint": [f"/{name}"], "User": user})])

    return cached(name, key_of(ref, src, user, go_version()), build)


def build_instance() -> Path:
    """cloudsql-instance.go: Google's side of one Cloud SQL instance, for the real proxy (no route to Google)."""
    return go_program_image("cloudsql-instance", INSTANCE, "65532:65532")


def build_pause() -> Path:
    """pause.go: containerd's sandbox image."""
    return go_program_image("pause", PAUSE, "65535:65535")


def chart_version() -> str:
    for line in (REPO / "charts" / "matomo" / "Chart.yaml").read_text().splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip().strip("\"'")
    raise SystemExit("no version in charts/matomo/Chart.yaml")


def hook_ref() -> str:
    return f"{HOOK_REPOSITORY}:{chart_version()}"


def build_hook() -> Path:
    """hooks/Dockerfile itself, through buildah, FROM the local Debian python image (PYTHON_IMAGE)."""
    base_archive = build_python()
    hooks = REPO / "hooks"
    ref = hook_ref()

    def build(out: Path) -> None:
        store = CACHE / "buildah"
        common = ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"),
                  "--storage-driver", "vfs"]
        subprocess.run([*common, "pull", "--quiet", f"docker-archive:{base_archive}"], check=True,
                       stdout=subprocess.DEVNULL)
        with tempfile.TemporaryDirectory() as ctx:
            # the build context: what hooks/Dockerfile copies (no caches, no egg-info)
            for name in ("Dockerfile", "pyproject.toml", "README.md", "prune.py"):
                shutil.copy(hooks / name, Path(ctx) / name)
            shutil.copytree(hooks / "src", Path(ctx) / "src",
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
            # the machine's CA bundle for RUN steps only (pip behind a TLS-inspecting
            # egress proxy); never part of the image
            ca = Path("/etc/ssl/certs/ca-certificates.crt")
            mounts = ["--volume", f"{ca}:{ca}:ro"] if ca.exists() else []
            subprocess.run([*common, "build", "--quiet", "--isolation", "chroot", "--pull-never", *mounts,
                            "--build-arg", f"PYTHON_IMAGE={PYTHON}", "--layers=false",
                            "-t", ref, ctx], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*common, "push", "--quiet", ref, f"docker-archive:{out}:{ref}"], check=True)
        subprocess.run([*common, "rmi", "--all", "--force"], check=False, capture_output=True)

    return cached("hook", key_of(ref, base_archive.name, hooks / "Dockerfile", hooks / "pyproject.toml",
                                 hooks / "README.md", hooks / "prune.py", hooks / "src"), build)


# Debian's static busybox alone: mmdebstrap's extract variant unpacks the package's files and
# nothing else (no other package, no maintainer script); the links give a plugin image the
# /bin/sh and cp the chart's init container plugin-<i> runs (README, "Adding a plugin").
BUSYBOX_PACKAGES = ["busybox-static"]
BUSYBOX_LINKS = ["sh", "cp", "mv", "rm", "mkdir", "ls", "cat"]


def layer_busybox() -> Path:
    # mmdebstrap runs no customize hook in the extract variant: the package's files only
    return cached("layer-busybox", key_of(BUSYBOX_PACKAGES, MIRRORS, "extract"),
                  lambda out: mmdebstrap_layer(out, BUSYBOX_PACKAGES, [], variant="extract"))


def layer_busybox_links() -> Path:
    """/bin/sh, cp, ... as links to the static busybox (what Debian's package leaves to `busybox --install`)."""
    links = {f"bin/{a}": "busybox" for a in BUSYBOX_LINKS}
    return cached("layer-busybox-links", key_of("links", links),
                  lambda out: files_layer(out, {}, links=links))


def build_plugin(image: str) -> Path:
    """A plugin image as README's "Adding a plugin" describes (FROM busybox, the plugin folder at
    /plugins/<Name>): the static busybox layer and the genuine plugin's folder."""
    name, version = PLUGINS[image]
    archive = PLUGIN_TARBALLS / f"{name}-{version}.tar.gz"
    if not archive.exists():
        raise SystemExit(f"no {name} {version} plugin archive at {archive} (MATOMO_PLUGIN_TARBALLS)")
    plugin = cached(f"layer-plugin-{image}", key_of("plugin-code", name, archive),
                    lambda out: plugin_layer(out, archive, name))
    img = Image(plugin_ref(image), [layer_busybox(), layer_busybox_links(), plugin], {"Cmd": ["/bin/sh"]})
    return cached(image, key_of(img.ref, [p.name for p in img.layers], img.config),
                  lambda out: write_archive(out, [img]))


BUILDERS: dict[str, Callable[[], Path]] = {
    "pause": build_pause,
    "mariadb": build_mariadb,
    "matomo": build_matomo,
    "hook": build_hook,
    "nginx": build_nginx,
    "redis": build_redis,
    "cloud-sql-proxy": build_proxy,
    "cloudsql-instance": build_instance,
    "python": build_python,
    **{image: (lambda image=image: build_plugin(image)) for image in PLUGINS},
}


def build(names: list[str] | None = None) -> dict[str, Path]:
    """Build (or find in the cache) the named archives, serially."""
    return {n: BUILDERS[n]() for n in (names or list(BUILDERS))}


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    if cmd == "build":
        for name, path in build(argv[1:] or None).items():
            print(f"{name}\t{path}")
        return 0
    if cmd == "list":
        print("matomo\t" + " ".join(f"matomo:{v}-{x}" for v in MATOMO_VERSIONS for x in ("apache", "fpm")))
        for n, r in (("mariadb", MARIADB), ("nginx", NGINX), ("redis", REDIS), ("cloud-sql-proxy", proxy_ref()),
                     ("cloudsql-instance", INSTANCE), ("pause", PAUSE), ("python", PYTHON), ("hook", hook_ref()),
                     *((image, plugin_ref(image)) for image in PLUGINS)):
            print(f"{n}\t{r}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
