"""Exceptions that carry a message meant for the user.

The command line prints ``InputError`` messages as one line and exits non-zero;
the Slicer panel shows them in a message box. Every message names the input,
the problem and what to do about it.
"""


class InputError(ValueError):
    """Bad input from the user: a file, a value or a combination of them."""


class BundleError(InputError):
    """A weight bundle that must not be used (tampered, wrong schema, wrong features)."""
