"""``fit --help`` (and ``validate``, ``test``) without importing Lightning, once it has been shown.

The Trainer commands' options are Lightning's own, listed by LightningCLI from the Trainer's signature: showing
them takes importing Lightning (4–5 s, most of it torch, ``torch._dynamo`` and torchmetrics' optional imports). So
the text LightningCLI printed is kept in the user's cache (``$XDG_CACHE_HOME/lit_transfer/help``, else
``~/.cache``) under a key of everything that text is made from: the command line, the program name, the terminal
width, the Python version, every installed distribution's version and this package's own code and configs. Any
change to one of them is a new key, so a kept text is never stale; only a bare ``COMMAND --help`` is kept (with
``--config`` or other options, the help shows their values and is always made afresh).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from importlib import metadata
from io import StringIO
from pathlib import Path

from lit_transfer.io import write_atomic

PACKAGE = Path(__file__).resolve().parent
HELP_FLAGS = ("-h", "--help")


def cache_folder() -> Path:
    """Where kept help texts live: the user's cache, as the XDG base directories say."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "lit_transfer" / "help"


def kept(argv: list[str]) -> bool:
    """Whether ``argv`` asks for a Trainer command's bare help, the one text that can be kept."""
    return len(argv) == 2 and argv[1] in HELP_FLAGS


def key(argv: list[str], prog: str, package: Path = PACKAGE) -> str:
    """A digest of everything the help text of ``argv`` depends on."""
    digest = hashlib.sha256()
    columns = shutil.get_terminal_size().columns  # what argparse wraps the text to
    distributions = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    for part in (*argv, prog, str(columns), sys.version, *distributions):
        digest.update(part.encode() + b"\0")
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def show(argv: list[str], prog: str, make: Callable[[], None]) -> None:
    """Print the help of ``argv`` from the cache, or by ``make`` (which prints it and exits 0), keeping what it
    printed. A cache that cannot be written costs the next call its speed, nothing else."""
    path = cache_folder() / f"{key(argv, prog)}.txt"
    try:
        sys.stdout.write(path.read_text())
        return
    except OSError:  # not kept yet, or not readable: made afresh
        pass
    printed = StringIO()
    done: SystemExit | None = None
    try:
        with redirect_stdout(printed):
            make()
    except SystemExit as exit_:
        done = exit_
    finally:
        sys.stdout.write(printed.getvalue())  # whatever happened, what was printed is shown
    if done is None:
        return
    if done.code not in (None, 0):
        raise done
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, printed.getvalue())
    except OSError:
        pass
