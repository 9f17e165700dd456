"""``python -m lit_transfer``: third-party noise is silenced before anything imports it, since some libraries log on
import (bitsandbytes warns about an optional CPU kernel package on machines whose CPU could use it)."""

from lit_transfer.quiet import silence

silence()

from lit_transfer.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
