"""Genuine Matomo plugins that are not bundled with Matomo, unpacked once and cached.

``MATOMO_PLUGINS_DIR`` (default: ``../shared/plugins`` beside the repository)
holds ``<Name>-<version>.tar.gz``, checked against the checksum its README
lists; the archive unpacks into ``<Name>/``, the plugin folder as Matomo
expects it (under ``plugins/`` or a folder of ``MATOMO_PLUGIN_DIRS``). It is
unpacked into ``.scratch/matomo/plugins/`` (ignored) with the same code as
the release trees (tests/harness/matomo_release.py): world-readable, as an
image would have it. Never copied into the repository.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from harness.matomo_release import CACHE, REPO, ReleaseMissing, _sha256, _unpack

DEFAULT_DIR = REPO.parent / "shared" / "plugins"
# The checksums ../shared/plugins/README.md lists.
KNOWN_SHA256 = {
    "QueuedTracking-5.1.1.tar.gz": "dc618c370e45955572a0c5744bde8c3f1bddbb3d4ce7795471918f3a7ad37593",
}


def plugin_archive(name: str, version: str) -> Path:
    """The plugin's archive; ReleaseMissing naming MATOMO_PLUGINS_DIR when there is none."""
    folder = Path(os.environ.get("MATOMO_PLUGINS_DIR", str(DEFAULT_DIR)))
    package = folder / f"{name}-{version}.tar.gz"
    if not package.is_file():
        raise ReleaseMissing(f"the plugin {name} {version} not found: no {package}. Set MATOMO_PLUGINS_DIR to a "
                             f"folder holding {package.name}")
    return package


def plugin_tree(name: str, version: str) -> Path:
    """The unpacked folder ``<Name>`` of the plugin (it holds ``<Name>.php``)."""
    package = plugin_archive(name, version)
    digest = _sha256(package)
    sha = KNOWN_SHA256.get(package.name)
    if sha and digest != sha:
        raise ReleaseMissing(f"{package}: sha256 {digest} is not the expected {sha}")
    tree = CACHE / "plugins" / f"{name}-{version}-{digest[:16]}" / name
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _unpack(package, tree)
    if not (tree / f"{name}.php").is_file():
        raise ReleaseMissing(f"{package}: no {name}/{name}.php in it")
    return tree
