"""Radiomics features of target lesions, equal to stock pyradiomics 3.0.1 to the bit, computed faster.

``catalogue``: the 1130 names, software versions and a lesion's provenance;
``engine``: one lesion's pieces (shape and 12 filtered images) from pyradiomics'
own feature classes; ``extract``: a patient's lesions with workers and a cache;
``resampling``, ``shape_mesh``, ``texture_matrices``: the parts computed
differently (and tested equal); ``cache``, ``table``: features on disk;
``parallel``: the worker processes; ``engine_check``: the installed engine
against a stored reference; ``radiomics_log``: pyradiomics' logger kept quiet.
"""
