"""``python -m lit_transfer`` and the ``lit-transfer`` command: third-party noise is silenced before anything imports
it, since some libraries log on import (bitsandbytes warns about an optional CPU kernel package on machines whose CPU
could use it)."""

from lit_transfer.quiet import silence


def main() -> None:
    silence()
    from lit_transfer.cli import main as run

    run()


if __name__ == "__main__":
    main()
