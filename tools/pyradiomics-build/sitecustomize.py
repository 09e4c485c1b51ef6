"""Build-time shim for pyradiomics 3.0.1's setup glue on Python 3.12+; install.sh puts this folder on
PYTHONPATH for that one ``pip install`` only, never at run time.

pyradiomics 3.0.1 is the version the features and the bundled weights were computed with, and PyPI
has no wheel of it for current Pythons, only the sdist. Its ``versioneer.py`` (0.17, which ``setup.py`` runs to read ``setup.cfg``)
calls ``configparser.SafeConfigParser()`` and ``parser.readfp()``; both were deprecated aliases since
Python 3.2 and removed in 3.12, so metadata generation fails there before anything is compiled. This
file puts the two aliases back, pointing at what they were aliases of (``ConfigParser`` and
``read_file``), so the sdist builds unmodified: the C sources and ``radiomics/`` are not touched, and
pip still checks the sdist's hash. Where the aliases exist (3.11 and older) it changes nothing.

Python imports ``sitecustomize`` at start-up from the first folder on ``sys.path`` that has one, and
PYTHONPATH comes first, so pip and the setup.py it runs (pip passes its environment on when building
with ``--no-build-isolation``, as install.sh does) both load this file.
"""

import configparser

if not hasattr(configparser, "SafeConfigParser"):
    configparser.SafeConfigParser = configparser.ConfigParser

if not hasattr(configparser.RawConfigParser, "readfp"):
    def _readfp(self, fp, filename=None):
        """The 3.11 signature: ``readfp(fp, filename)`` is ``read_file(fp, source=filename)``."""
        self.read_file(fp, source=filename)

    configparser.RawConfigParser.readfp = _readfp
