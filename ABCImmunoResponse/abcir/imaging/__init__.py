"""Reading images: a CT checked to be one (``ct``), Slicer's ``.seg.nrrd`` files (``segfile``), NIfTI geometry.

``nifti`` says which of a NIfTI file's two geometries was read. DICOM series,
SEG and SR are in ``abcir.dicom``.
"""
