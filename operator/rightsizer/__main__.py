"""`python -m rightsizer` and the `rightsizer` console script."""

import sys

from rightsizer.cli.main import main as _main


def main() -> None:
    sys.exit(_main())


if __name__ == "__main__":
    main()
