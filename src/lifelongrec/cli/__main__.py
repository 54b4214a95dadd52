"""``python -m lifelongrec.cli``: the same command line as the ``lifelongrec`` script."""

from lifelongrec.cli import main

if __name__ == "__main__":  # importing the module (doctest collection) runs nothing
    main()
