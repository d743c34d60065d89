"""``python -m modelshelfd`` and the ``modelshelfd`` console script."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from .config import ConfigError, load_config


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ConfigError as exc:
        print(f"modelshelfd: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from .server import StartupError, run

    try:
        run(config)
    except StartupError as exc:
        logging.getLogger("modelshelfd").error("cannot start: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
