"""``python -m lifelongrec.cli``: the same command line as the ``lifelongrec`` script."""

from lifelongrec.cli import main

main()
