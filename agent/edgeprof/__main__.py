"""``python -m edgeprof``: the same as the ``edgeprof`` command."""

from edgeprof.cli import main

main()
