"""ABCImmunoResponse core: CT radiomics and response prediction for advanced breast cancer.

Pure Python (numpy, SimpleITK, pyradiomics); no Slicer import anywhere below this package.
"""

__version__ = "0.1.0"
