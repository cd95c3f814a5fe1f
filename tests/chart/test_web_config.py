"""The web server config the chart renders (ConfigMap F-web) really serves
the readiness file and static assets, and never serves the config (it holds
the database password and the salt), Matomo's private tmp files, or any file
of core/, lang/, vendor/, libs/, plugins/, misc/user/, node_modules/ but
static ones (Matomo's own .htaccess rules: the image's code has no .htaccess,
Matomo writes them at install, and the code is read-only in the pods).

Both serve the code where the image has it, /usr/src/matomo (nginx: the
static files matomo-init.sh copies there for it); Matomo's writable files are
outside it, in /var/lib/matomo. The fake tree still holds a config and tmp
files in the code's folder: the rules must hide them wherever they are.

Runs the rendered apache vhost with the machine's apache2 and the rendered
nginx server with nginx, unprivileged, on a free loopback port, against a
fake Matomo tree; skipped when the binary is not installed (the Matomo
images are not available here).
"""

from __future__ import annotations

import contextlib
import shutil
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, KUBE_VERSION, run_helm
from harness.basics import free_port

APACHE_MODULES = ["mpm_event", "authz_core", "authz_host", "mime", "dir", "alias"]
APACHE_MODULE_DIR = Path("/usr/lib/apache2/modules")
CODE_DIR = "/usr/src/matomo"  # the image's code (the chart's matomo.codeDir)
USER_PATH = "/var/lib/matomo"  # Matomo's writable files (matomo.userPath, files/bootstrap.php)


def _web_config(helm: str, variant: str) -> dict:
    result = run_helm(helm, "template", "m", str(CHART), "--kube-version", KUBE_VERSION,
                      "-s", "templates/matomo/configmap-web.yaml", "--set", f"image.variant={variant}")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["data"]



def _fake_matomo(root: Path) -> None:
    files = {
        "matomo.js": "/* tracker */",
        "index.php": "<?php\n",
        "config/config.ini.php": "; <?php exit; ?>\n[database]\npassword = \"SECRET\"\n",
        "config/common.config.ini.php": "; <?php exit; ?>\n",
        "config/global.ini.php": "; <?php exit; ?>\n",
        "tmp/cache/tracker/x.php": "SECRET",
        "tmp/sessions/s": "SECRET",
        "tmp/templates_c/t.php": "SECRET",
        "tmp/logs/matomo.log": "SECRET",
        "plugins/Morpheus/images/logo.png": "png",
        "plugins/Morpheus/stylesheets/base.css": "css",
        "vendor/twig/twig/src/x.js": "js",
        "js/piwik.js": "/* tracker source */",
        # PHP that only Matomo's entry points include: never run by a direct request
        "vendor/autoload.php": "<?php // SECRET",
        "core/Version.php": "<?php // SECRET",
        "lang/en.json": "{\"SECRET\": 1}",
        "plugins/Login/Login.php": "<?php // SECRET",
        "libs/Zend/x.php": "<?php // SECRET",
        "misc/user/x.php": "<?php // SECRET",
        "node_modules/x/y.php": "<?php // SECRET",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture()
def docroot():
    """A world-readable fake Matomo tree (servers started as root serve it
    from unprivileged workers, which cannot enter pytest's 0700 tmp dirs)."""
    base = Path(tempfile.mkdtemp(prefix="matomo-web-"))
    os.chmod(base, 0o755)
    root = base / "html"
    _fake_matomo(root)
    for dirpath, _dirs, files in os.walk(base):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    yield root
    shutil.rmtree(base, ignore_errors=True)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def _wait(port: int, proc: subprocess.Popen) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    raise AssertionError(f"the web server did not start: {out}")


SECRETS = ["config/config.ini.php", "config/common.config.ini.php", "config/global.ini.php",
           "tmp/cache/tracker/x.php", "tmp/sessions/s", "tmp/templates_c/t.php", "tmp/logs/matomo.log",
           "vendor/autoload.php", "core/Version.php", "lang/en.json", "plugins/Login/Login.php", "libs/Zend/x.php",
           "misc/user/x.php", "node_modules/x/y.php"]
STATIC = ["plugins/Morpheus/images/logo.png", "plugins/Morpheus/stylesheets/base.css", "vendor/twig/twig/src/x.js",
          "js/piwik.js"]


def _check(port: int) -> None:
    status, body = _get(port, "matomo.js")
    assert status == 200 and "tracker" in body, "the readiness file /matomo.js is not served"
    for path in STATIC:
        status, _ = _get(port, path)
        assert status == 200, f"static asset /{path} answered {status}"
    for path in SECRETS:
        status, body = _get(port, path)
        assert status in (403, 404), f"/{path} answered {status}"
        assert "SECRET" not in body


def _nginx_main_config(tmp_path: Path, types: str) -> Path:
    """nginx.conf for running the chart's server block (tmp_path/server.conf) unprivileged in tmp_path."""
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {tmp_path}/body;
  fastcgi_temp_path {tmp_path}/fastcgi;
  proxy_temp_path {tmp_path}/proxy;
  uwsgi_temp_path {tmp_path}/uwsgi;
  scgi_temp_path {tmp_path}/scgi;
  types {{ {types} }}
  include {tmp_path}/server.conf;
}}
""")
    return conf


def _nginx_and_fpm_binaries(root_for: str) -> tuple[str, str]:
    """nginx and php-fpm of this machine; the test is skipped, saying why, where they or root are missing."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    fpm = shutil.which("php-fpm") or shutil.which("php-fpm8.2") or "/usr/sbin/php-fpm8.2"
    if not Path(nginx).exists() or not Path(fpm).exists():
        pytest.skip("nginx and php-fpm are not installed (apt-get install nginx-light php8.2-fpm to run this test)")
    if os.geteuid() != 0 or not Path("/etc/nginx/fastcgi_params").is_file():
        pytest.skip(f"needs root ({root_for}) and nginx's fastcgi_params")
    return nginx, fpm


@contextlib.contextmanager
def _nginx_and_fpm(tmp_path: Path, server: str, fpm: str, nginx: str, types: str, pool: str) -> Iterator[int]:
    """The fpm pod's two processes on this machine: php-fpm (a static pool as www-data, `pool` added to it)
    and nginx with the rendered `server` block, its listen and fastcgi_pass moved to free local ports.
    Yields nginx's port; both are stopped after."""
    fpm_port, port = free_port(), free_port()
    (tmp_path / "fpm.conf").write_text(f"""[global]
error_log = {tmp_path}/fpm.log
daemonize = no
[www]
user = www-data
group = www-data
listen = 127.0.0.1:{fpm_port}
pm = static
{pool}""")
    server = server.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    server = server.replace("include fastcgi_params;", "include /etc/nginx/fastcgi_params;")
    assert "fastcgi_pass 127.0.0.1:9000;" in server
    server = server.replace("fastcgi_pass 127.0.0.1:9000;", f"fastcgi_pass 127.0.0.1:{fpm_port};")
    (tmp_path / "server.conf").write_text(server)
    _nginx_main_config(tmp_path, types)
    php = subprocess.Popen([fpm, "-n", "-F", "-R", "-y", str(tmp_path / "fpm.conf")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    web = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(fpm_port, php)
        _wait(port, web)
        yield port
    finally:
        for proc in (web, php):
            proc.terminate()
            proc.wait(timeout=10)


def test_apache_vhost_serves_matomo_js_and_hides_the_config(helm: str, tmp_path: Path, docroot: Path) -> None:
    apache = shutil.which("apache2") or "/usr/sbin/apache2"
    if not Path(apache).exists() or not APACHE_MODULE_DIR.is_dir():
        pytest.skip("apache2 is not installed (apt-get install apache2 to run this test)")
    data = _web_config(helm, "apache")
    assert data["ports.conf"].strip().endswith("Listen 8080")
    port = free_port()
    assert f"DocumentRoot {CODE_DIR}\n" in data["000-default.conf"]
    vhost = data["000-default.conf"].replace(CODE_DIR, str(docroot)).replace("*:8080", f"*:{port}")
    vhost = vhost.replace("/proc/self/fd/2", str(tmp_path / "error.log")).replace("/proc/self/fd/1", str(tmp_path / "access.log"))
    # Modules built into the binary (log_config, unixd on Debian) cannot be loaded again.
    modules = "\n".join(f"LoadModule {m}_module {APACHE_MODULE_DIR}/mod_{m}.so"
                        for m in APACHE_MODULES if (APACHE_MODULE_DIR / f"mod_{m}.so").exists())
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"""{modules}
ServerRoot {tmp_path}
PidFile {tmp_path}/httpd.pid
Mutex file:{tmp_path}
ErrorLog {tmp_path}/error.log
LogFormat "%h %l %u %t \\"%r\\" %>s %O" combined
TypesConfig /etc/mime.types
Listen 127.0.0.1:{port}
<Directory />
  AllowOverride None
  Require all denied
</Directory>
{vhost}
""")
    proc = subprocess.Popen([apache, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(port, proc)
        _check(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_nginx_serves_matomo_js_and_hides_the_config(helm: str, tmp_path: Path, docroot: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (apt-get install nginx-light to run this test)")
    data = _web_config(helm, "fpm")
    port = free_port()
    assert f"root {CODE_DIR};" in data["default.conf"]
    server = data["default.conf"].replace(CODE_DIR, str(docroot)).replace("listen 8080;", f"listen 127.0.0.1:{port};")
    server = server.replace("include fastcgi_params;", "")
    (tmp_path / "server.conf").write_text(server)
    conf = _nginx_main_config(tmp_path, "application/javascript js; image/png png;")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(port, proc)
        _check(port)
        status, _ = _get(port, "plugins/Morpheus/x.php")
        assert status == 403, "PHP files other than Matomo's entry points must not run"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("variant, name", [("apache", "000-default.conf"), ("fpm", "default.conf")])
def test_the_writable_files_are_outside_what_is_served(helm: str, variant: str, name: str) -> None:
    """config.ini.php (password, salt) and tmp/ are in the user path: no directive of the
    web config serves it, and it is not inside the code's folder the server serves."""
    conf = _web_config(helm, variant)[name]
    directives = [line for line in conf.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert not [line for line in directives if USER_PATH in line or "/var/www/html" in line]
    assert not (USER_PATH + "/").startswith(CODE_DIR.rstrip("/") + "/")


def test_nginx_sends_the_root_to_matomos_index_php_which_it_does_not_have(helm: str, tmp_path: Path) -> None:
    """In the fpm pod nginx has the static files only (matomo-init.sh's copy, mounted at the
    code's path) and php-fpm has the code at that same path: a request for / must reach
    Matomo's index.php through php-fpm (nginx's index module would find no index.php and
    answer 403). php-fpm runs chrooted into a tree that holds the code at nginx's root path,
    as the matomo container has it."""
    nginx, fpm = _nginx_and_fpm_binaries("php-fpm's chroot")
    base = Path(tempfile.mkdtemp(prefix="matomo-fpm-"))
    try:
        os.chmod(base, 0o755)
        static = base / "static"  # nginx's view: matomo-static at the code's path
        static.mkdir()
        (static / "matomo.js").write_text("/* tracker */")
        code = base / "chroot" / str(static).lstrip("/")  # php-fpm's view: the code at that same path
        code.mkdir(parents=True)
        (code / "index.php").write_text("<?php echo 'matomo index ', $_SERVER['SCRIPT_NAME'], ' ', $_SERVER['QUERY_STRING'];\n")
        for dirpath, _dirs, files in os.walk(base):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        server = _web_config(helm, "fpm")["default.conf"].replace(CODE_DIR, str(static))
        with _nginx_and_fpm(tmp_path, server, fpm, nginx, "application/javascript js;",
                            f"pm.max_children = 1\nchroot = {base / 'chroot'}\n") as port:
            assert _get(port, "matomo.js") == (200, "/* tracker */")
            assert _get(port, "") == (200, "matomo index /index.php "), (tmp_path / "error.log").read_text()
            assert _get(port, "?module=CoreHome&action=index") == (200, "matomo index /index.php module=CoreHome&action=index")
            assert _get(port, "index.php?a=b") == (200, "matomo index /index.php a=b")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- the tracker pods' web config (tracker.enabled: F-web keys tracker-*) ---

TRACKER_PHP = {
    # each entry point answers with its name and the query, so a 200 shows PHP ran *that* file
    "matomo.php": "<?php echo 'tracked matomo.php ', $_SERVER['REQUEST_METHOD'], ' ', $_SERVER['QUERY_STRING'], ' ', file_get_contents('php://input');\n",
    "piwik.php": "<?php echo 'tracked piwik.php ', $_SERVER['QUERY_STRING'];\n",
    "js/index.php": "<?php echo 'js proxy ', $_SERVER['QUERY_STRING'];\n",
    "js/tracker.php": "<?php echo 'SECRET js/tracker.php';\n",
    "index.php": "<?php echo 'SECRET the UI';\n",
    "plugins/Login/Login.php": "<?php echo 'SECRET';\n",
    "core/Version.php": "<?php echo 'SECRET';\n",
}
TRACKER_STATIC = {
    "matomo.js": "/* matomo tracker */",
    "piwik.js": "/* piwik tracker */",
    "js/piwik.js": "/* SECRET tracker source, the UI's */",
    "plugins/Morpheus/images/logo.png": "SECRET png",
    "config/config.ini.php": "; <?php exit; ?>\n[database]\npassword = \"SECRET\"\n",
    "robots.txt": "SECRET robots",
}
# served by the tracker: (path, method, body) -> what the answer starts with
TRACKER_SERVED = [
    ("matomo.js", None, "/* matomo tracker */"),
    ("piwik.js", None, "/* piwik tracker */"),
    ("matomo.php?idsite=1&rec=1", None, "tracked matomo.php GET idsite=1&rec=1 "),
    ("piwik.php?idsite=1&rec=1", None, "tracked piwik.php idsite=1&rec=1"),
    ("js/", None, "js proxy "),
    ("js/?idsite=1&rec=1", None, "js proxy idsite=1&rec=1"),
    ("js/index.php?idsite=1&rec=1", None, "js proxy idsite=1&rec=1"),
    # bulk tracking: a POSTed JSON body
    ("matomo.php", b'{"requests":["?idsite=1&rec=1"]}', 'tracked matomo.php POST  {"requests":["?idsite=1&rec=1"]}'),
]
# refused by the tracker: the UI, the API, every other file
TRACKER_REFUSED = ["", "index.php", "index.php?module=CoreHome&action=index", "?module=API&method=API.getMatomoVersion",
                   "js/tracker.php", "js/piwik.js", "matomo.php/index.php", "plugins/Login/Login.php", "core/Version.php",
                   "plugins/Morpheus/images/logo.png", "config/config.ini.php", "robots.txt", "js/index.php/x"]


def _tracker_tree(base: Path) -> Path:
    root = base / "html"
    for name, text in {**TRACKER_PHP, **TRACKER_STATIC}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for dirpath, _dirs, files in os.walk(base):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return root


def _request(port: int, path: str, body: bytes | None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def _check_tracker(port: int, refused: tuple[int, ...]) -> None:
    for path, body, expected in TRACKER_SERVED:
        status, text = _request(port, path, body)
        assert (status, text) == (200, expected), f"/{path}: {status} {text!r}"
    for path in TRACKER_REFUSED:
        status, text = _request(port, path, None)
        assert status in refused, f"the tracker answered /{path} with {status} {text!r}"
        assert "SECRET" not in text, f"/{path}"


def _tracker_config(helm: str, variant: str) -> dict:
    result = run_helm(helm, "template", "m", str(CHART), "--kube-version", KUBE_VERSION,
                      "-s", "templates/matomo/configmap-web.yaml", "--set", f"image.variant={variant}",
                      "--set", "tracker.enabled=true")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["data"]


def test_tracker_apache_serves_the_tracking_endpoints_only(helm: str, tmp_path: Path) -> None:
    """The tracker's vhost (F-web `tracker-000-default.conf`, with the same `ports.conf`)
    in apache with mod_php, as in the apache image: the tracking API (GET, and a bulk POST),
    the tracker JavaScript and the js/ proxy run or are served; the UI (`/`, `index.php`),
    the API, js/tracker.php and every other file answer 403."""
    apache = shutil.which("apache2") or "/usr/sbin/apache2"
    php_module = APACHE_MODULE_DIR / "libphp8.2.so"
    if not Path(apache).exists() or not php_module.exists() or not (APACHE_MODULE_DIR / "mod_mpm_prefork.so").exists():
        pytest.skip("apache2 with mod_php is not installed (apt-get install apache2 libapache2-mod-php8.2)")
    data = _tracker_config(helm, "apache")
    assert data["ports.conf"].strip().endswith("Listen 8080")
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="matomo-tracker-"))
    try:
        os.chmod(base, 0o755)
        docroot = _tracker_tree(base)
        vhost = data["tracker-000-default.conf"].replace(CODE_DIR, str(docroot)).replace("*:8080", f"*:{port}")
        vhost = vhost.replace("/proc/self/fd/2", str(tmp_path / "error.log")).replace("/proc/self/fd/1", str(tmp_path / "access.log"))
        # mod_php is not thread-safe: prefork, as the upstream apache image runs it
        modules = "\n".join(f"LoadModule {m}_module {APACHE_MODULE_DIR}/mod_{m}.so"
                            for m in ["mpm_prefork", *APACHE_MODULES[1:]] if (APACHE_MODULE_DIR / f"mod_{m}.so").exists())
        conf = tmp_path / "httpd.conf"
        conf.write_text(f"""{modules}
LoadModule php_module {php_module}
ServerRoot {tmp_path}
PidFile {tmp_path}/httpd.pid
Mutex file:{tmp_path}
ErrorLog {tmp_path}/error.log
LogFormat "%h %l %u %t \\"%r\\" %>s %O" combined
TypesConfig /etc/mime.types
Listen 127.0.0.1:{port}
User www-data
Group www-data
# the upstream image's docker-php.conf
<FilesMatch \\.php$>
  SetHandler application/x-httpd-php
</FilesMatch>
<Directory />
  AllowOverride None
  Require all denied
</Directory>
{vhost}
""")
        # a session of its own: prefork's shutdown signals its whole process group
        proc = subprocess.Popen([apache, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            _wait(port, proc)
            _check_tracker(port, refused=(403,))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_tracker_nginx_and_php_fpm_serve_the_tracking_endpoints_only(helm: str, tmp_path: Path) -> None:
    """The tracker's nginx server (F-web `tracker-default.conf`) in front of php-fpm: the
    tracking API (GET, and a bulk POST), the tracker JavaScript and the js/ proxy run or are
    served; the UI (`/`, `index.php`), the API, js/tracker.php and every other file answer 404."""
    nginx, fpm = _nginx_and_fpm_binaries("php-fpm's pool user")
    base = Path(tempfile.mkdtemp(prefix="matomo-tracker-fpm-"))
    try:
        os.chmod(base, 0o755)
        docroot = _tracker_tree(base)
        server = _tracker_config(helm, "fpm")["tracker-default.conf"].replace(CODE_DIR, str(docroot))
        with _nginx_and_fpm(tmp_path, server, fpm, nginx, "application/javascript js; image/png png;",
                            "pm.max_children = 2\n") as port:
            _check_tracker(port, refused=(404,))
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("variant", ["apache", "fpm"])
def test_the_tracker_config_leaves_the_serving_pods_untouched(helm: str, variant: str) -> None:
    """tracker.enabled adds the tracker's keys to F-web; the serving pods' keys, and so
    their checksum/web (no restart of the UI pods), stay as they were."""
    off, on = _web_config(helm, variant), _tracker_config(helm, variant)
    assert {k: on[k] for k in off} == off
    assert set(on) - set(off) == {"tracker-000-default.conf" if variant == "apache" else "tracker-default.conf"}
