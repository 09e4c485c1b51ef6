"""Long work in a separate process: a job folder in, events and a result file out.

Inside 3D Slicer the Qt event loop holds Python's GIL, so feature extraction
and prediction run in a child process (``python -m abcir.jobs FOLDER``) that
the panel starts, watches through files and can kill. ``spec`` describes the
job (``job.json``), ``events`` the progress lines the child writes, ``run``
the child itself. Importing this package stays light (no pyradiomics): the
parent only needs ``spec`` and ``events``.
"""

from .events import (
    EVENTS_FILE,
    SENSITIVITY_STEP,
    DoneEvent,
    ErrorEvent,
    Event,
    ProgressEvent,
    StatusEvent,
    parse_event,
    parse_lines,
    write_event,
)
from .spec import (
    FEATURES_FILE,
    JOB_FILE,
    RESULT_FILE,
    JobLesion,
    OutlinesJob,
    PredictJob,
    ReadersJob,
    SensitivityRequest,
    read_job,
    write_job,
)

__all__ = ["EVENTS_FILE", "FEATURES_FILE", "JOB_FILE", "RESULT_FILE", "SENSITIVITY_STEP", "DoneEvent", "ErrorEvent",
           "Event", "JobLesion", "OutlinesJob", "PredictJob", "ProgressEvent", "ReadersJob", "SensitivityRequest",
           "StatusEvent", "parse_event", "parse_lines", "read_job", "write_event", "write_job"]
