"""Run one benchmark: `python -m benchmarks <name> [options]`.

Each benchmark is a module `benchmarks/<name>.py` with a `main(argv: list[str]) -> int`. It
measures a naive baseline in the same run and prints, as its last line, one JSON object.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def available() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_")
    )


def main() -> int:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(f"usage: python -m benchmarks {{{','.join(names)}}} [options]")
        return 2
    name = sys.argv[1]
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{name}")
    return int(module.main(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
