"""The MRML bridge of ABCImmunoResponse: scene nodes in, core types out, results back into nodes.

Everything here uses Slicer's MRML classes only (no Qt, no widgets), so it runs
in Slicer and, unchanged, on a plain ``vtkMRMLScene`` from the ``slicer-core``
wheel, where ``Testing/mrml`` checks it against real files. Numerics, rules and
file formats stay in the core package ``abcir``.
"""
