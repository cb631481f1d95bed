"""The ``autodoctor-db`` command line.

    autodoctor-db demo        the scripted scenario (what ``make demo`` runs)

The database comes from ``--dsn`` or the libpq ``PG*`` environment variables.
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from . import demo


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``autodoctor-db`` console script."""
    parser = argparse.ArgumentParser(prog="autodoctor-db", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn", default="", help="libpq connection string (default: PG* variables)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the scripted race scenario against the database")
    args = parser.parse_args(argv)

    try:
        if args.command == "demo":
            result = demo.run(args.dsn)
            return 0 if len(result["winners"]) == 1 else 1
    except psycopg.OperationalError as exc:
        print(f"autodoctor-db: cannot reach the database: {exc}".rstrip(), file=sys.stderr)
        print("  Is it running? `make db-start` starts the throwaway cluster.", file=sys.stderr)
        return 2
    except psycopg.errors.UndefinedFunction as exc:
        print(f"autodoctor-db: the package is not deployed here: {exc}".rstrip(), file=sys.stderr)
        print("  Run `make deploy` (sqitch deploy --verify).", file=sys.stderr)
        return 2
    return 1  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
