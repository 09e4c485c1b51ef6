"""DICOM in and out: CT series reading, lesions from DICOM SEG, and SEG/SR export back to PACS.

- ``series``: list the series of a folder, choose the CT series, read it as a volume in HU;
- ``stack_geometry``: order a series' slices and check they form a regular grid;
- ``seg_reading``: target lesions from a DICOM SEG (RTSTRUCT refused);
- ``seg_export``, ``sr_export``: the lesions as DICOM SEG and the prediction as DICOM SR;
- ``export``: the checks before export and the writing of both files.

Nothing is imported here: pydicom and highdicom load only when a command reads or writes DICOM.
"""
