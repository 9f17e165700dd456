"""Files shipped inside the package — search spaces and configs (``configs/``), base models, the experience and its
pretrained surrogates (``assets/``) — found wherever lit_transfer is installed, not only in a checkout.

Paths written relative to the project (``configs/tune/demo.yaml``, ``assets/models/world-phi3-v2``, as the README
and the recorded runs name them) are used as given when they exist, and otherwise found in the package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from jsonargparse import ActionConfigFile

PACKAGE = Path(str(files("lit_transfer")))
CONFIGS = PACKAGE / "configs"
ASSETS = PACKAGE / "assets"
# the experience shipped with the package, and its pretrained surrogates beside it
SHIPPED_METADATASET = str(ASSETS / "metadata" / "v2.sqlite")


def resolve(path: str | Path) -> str:
    """``path`` if it exists; else the packaged file of that name (``configs/...`` or ``assets/...``); else ``path``
    unchanged (a hub name, or a path whose absence the caller reports)."""
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute():
        return str(path)
    packaged = PACKAGE / given
    return str(packaged) if packaged.exists() else str(path)


def looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else (``./x``, ``/x``, ``~/x``, ``a/b/c``) is meant as a path,
    so its absence is reported as a missing folder, not as an unknown hub repository."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1


class PackagedConfig(ActionConfigFile):
    """``--config configs/...`` from any folder: a config path that does not exist here is the packaged config of that
    name (every command's parser, LightningCLI's included, takes ``--config`` through this action)."""

    def __call__(self, parser, cfg, values, option_string=None) -> None:
        super().__call__(parser, cfg, resolve(values) if isinstance(values, str) else values, option_string)
