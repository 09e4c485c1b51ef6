"""Packaging glue that pyproject.toml cannot express: ``Resources/`` ships inside the package.

The Slicer extension keeps ``Resources/`` at the top level; pip installs map it to
``abcir/_resources`` so that a non-editable install finds the parameter file and
the bundled weights (see ``abcir.resources``).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("ABCImmunoResponse", include=["abcir", "abcir.*"]), "abcir._resources"],
    package_dir={"": "ABCImmunoResponse", "abcir._resources": "Resources"},
)
