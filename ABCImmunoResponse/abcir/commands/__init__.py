"""Sub-commands of the ``abcir`` command line, one module each."""
