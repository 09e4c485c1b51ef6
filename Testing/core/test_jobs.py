"""The job folder of the background process: job.json, the events protocol and ``python -m abcir.jobs``.

The child is run for real (a subprocess of the same interpreter importing the
same ``abcir`` as this test); the long prediction runs are in
Testing/mrml/test_process.py, here only what fails fast or needs no extraction.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from abcir.consensus.predictions import ReaderPredictions, predict_readers
from abcir.errors import InputError
from abcir.records import to_json_dict
from abcir.jobs import (
    EVENTS_FILE,
    JOB_FILE,
    RESULT_FILE,
    DoneEvent,
    ErrorEvent,
    JobLesion,
    PredictJob,
    ProgressEvent,
    ReadersJob,
    StatusEvent,
    parse_event,
    parse_lines,
    read_job,
    write_event,
    write_job,
)

TOKENS = ("lines=1", "sites=3+", "visceral=yes", "tnbc=no")
UTF8_NAME = "poumon gauche (lésion)"


def predict_job(**changes) -> PredictJob:
    fields = dict(patient_id="Patient Ø 1", ct="ct.nrrd",
                  lesions=(JobLesion(UTF8_NAME, "lung", "lesion000.nrrd"), JobLesion("foie_1", None, "lesion001.nrrd")),
                  clinical=TOKENS, model="combined", bundle=None, jobs=2, cache="/tmp/caché",
                  study_uid="1.2.3", series_uid="1.2.3.4")
    return PredictJob(**{**fields, **changes})


def test_predict_job_round_trips_through_utf8_json(tmp_path):
    job = predict_job()
    path = write_job(tmp_path, job)
    assert path == tmp_path / JOB_FILE
    data = json.loads(path.read_bytes().decode("utf-8"))
    assert data["kind"] == "predict" and data["lesions"][0]["name"] == UTF8_NAME
    assert read_job(tmp_path) == job
    with pytest.raises(InputError, match="already exists"):
        write_job(tmp_path, predict_job(jobs=1))
    assert read_job(tmp_path) == job  # the first job is kept


@pytest.mark.parametrize("consensus", [None, (JobLesion("consensus é", "liver", "consensus000.nrrd"),)])
def test_readers_job_round_trips(tmp_path, consensus):
    job = ReadersJob(ct="ct.nrrd", reader_a="Dr Ève", reader_b="Dr B",
                     lesions_a=(JobLesion(UTF8_NAME, "lung", "a000.nrrd"),), lesions_b=(), consensus=consensus,
                     clinical=None, model="radiomics", bundle="/site/bundle", jobs=1, cache=None)
    write_job(tmp_path, job)
    assert json.loads((tmp_path / JOB_FILE).read_text(encoding="utf-8"))["kind"] == "readers"
    assert read_job(tmp_path) == job


def test_predict_job_uids_default_to_empty(tmp_path):
    (tmp_path / JOB_FILE).write_text(json.dumps({
        "kind": "predict", "patient_id": "P", "ct": "ct.nrrd", "lesions": [], "clinical": None, "model": "radiomics",
        "bundle": None, "jobs": 1, "cache": None}), encoding="utf-8")
    job = read_job(tmp_path)
    assert (job.study_uid, job.series_uid, job.lesions) == ("", "", ())


@pytest.mark.parametrize("content, expected", [
    (None, r"job\.json': no such file; write the job with abcir\.jobs\.write_job"),
    (b"{not json", "cannot be read as UTF-8 JSON"),
    (b'{"kind": "x\xff"}', "cannot be read as UTF-8 JSON"),
    (json.dumps({"kind": "train"}).encode(), "field 'kind' is 'train', not one of predict, readers"),
    (json.dumps([1, 2]).encode(), "field 'kind' is None"),
])
def test_unreadable_job_files_are_named_with_the_fix(tmp_path, content, expected):
    if content is not None:
        (tmp_path / JOB_FILE).write_bytes(content)
    with pytest.raises(InputError, match=expected) as raised:
        read_job(tmp_path)
    assert str(tmp_path / JOB_FILE) in str(raised.value)


def test_job_fields_are_checked_by_name(tmp_path):
    data = {"kind": "predict", **json.loads(json.dumps(to_json_dict(predict_job())))}
    del data["model"]
    (tmp_path / JOB_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="field 'model' is missing"):
        read_job(tmp_path)
    data.update(model="combined", jobs=0)
    (tmp_path / JOB_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="field 'jobs' is 0; give at least 1"):
        read_job(tmp_path)
    data.update(jobs=1, lesions=[{"name": "a", "site": None, "mask": 3}])
    (tmp_path / JOB_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match=r"field 'lesions\[0\]\.mask' must be str"):
        read_job(tmp_path)


# The events protocol

EVENTS = [StatusEvent("Extracting radiomics features of 3 lesions"), ProgressEvent(1, 3, UTF8_NAME),
          ProgressEvent(2, 3, "lung_1"), DoneEvent(), ErrorEvent("input", "Lesion 'x': the mask is empty.")]


def test_events_are_one_json_object_per_line_and_parse_back():
    stream = io.StringIO()
    for event in EVENTS:
        write_event(stream, event)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(EVENTS)
    assert json.loads(lines[1]) == {"event": "progress", "done": 1, "total": 3, "what": UTF8_NAME}
    assert json.loads(lines[3]) == {"event": "done"}
    assert [parse_event(line) for line in lines] == EVENTS


def test_a_partial_last_line_is_left_for_the_next_read():
    stream = io.StringIO()
    for event in EVENTS[:3]:
        write_event(stream, event)
    data = stream.getvalue().encode("utf-8")
    cut = data.index(b"\n", data.index(b"\n") + 1) + 10  # inside the third line
    events, consumed = parse_lines(data[:cut])
    assert events == EVENTS[:2] and data[consumed - 1:consumed] == b"\n"
    rest, more = parse_lines(data[consumed:])
    assert rest == [EVENTS[2]] and consumed + more == len(data)


def test_a_line_cut_inside_a_utf8_character_waits_for_its_end():
    line = json.dumps({"event": "status", "text": UTF8_NAME}, ensure_ascii=False).encode("utf-8") + b"\n"
    cut = line.index("é".encode("utf-8")) + 1  # between the two bytes of 'é'
    assert parse_lines(line[:cut]) == ([], 0)
    assert parse_lines(line) == ([StatusEvent(UTF8_NAME)], len(line))


def test_an_empty_read_and_blank_lines_give_no_events():
    assert parse_lines(b"") == ([], 0)
    assert parse_lines(b"\n\r\n") == ([], 3)


@pytest.mark.parametrize("line, expected", [
    (b"not json\n", "is not JSON"),
    (b'{"event": "finished"}\n', "names no known event"),
    (b'{"event": "progress", "done": "1", "total": 3, "what": "x"}\n', "field 'done' must be int"),
    (b'{"event": "error", "kind": "oops", "message": "x"}\n', "error kind 'oops'"),
    (b'{"event": "done", "extra": 1}\n', "field 'extra' is not part of this format"),
])
def test_malformed_event_lines_are_refused(line, expected):
    with pytest.raises(ValueError, match=expected):
        parse_lines(b'{"event": "done"}\n' + line)


# The child process

def run_child(folder: Path) -> subprocess.CompletedProcess:
    """``python -m abcir.jobs FOLDER`` importing the same abcir as this test."""
    return subprocess.run([sys.executable, "-m", "abcir.jobs", str(folder)], capture_output=True, text=True,
                          timeout=300, check=False)


def events_of(folder: Path) -> list:
    events, consumed = parse_lines((folder / EVENTS_FILE).read_bytes())
    assert consumed == (folder / EVENTS_FILE).stat().st_size  # every line complete
    return events


def small_ct() -> sitk.Image:
    """A 20 x 20 x 10 voxel CT in HU (air around soft tissue), 1 x 1 x 2 mm."""
    array = np.full((10, 20, 20), -1000, np.int16)
    array[2:8, 4:16, 4:16] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 2.0))
    return image


def write_small_case(folder: Path, mask_origin=(0.0, 0.0, 0.0)) -> JobLesion:
    sitk.WriteImage(small_ct(), str(folder / "ct.nrrd"))
    mask = sitk.GetImageFromArray(np.pad(np.ones((4, 6, 6), np.uint8), ((3, 3), (7, 7), (7, 7))))
    mask.SetSpacing((1.0, 1.0, 2.0))
    mask.SetOrigin(mask_origin)
    sitk.WriteImage(mask, str(folder / "lesion000.nrrd"))
    return JobLesion(UTF8_NAME, "lung", "lesion000.nrrd")


def assert_input_error(folder: Path, completed: subprocess.CompletedProcess, expected: str) -> str:
    assert completed.returncode == 2, completed.stderr
    *_, last = events_of(folder)
    assert isinstance(last, ErrorEvent) and last.kind == "input"
    assert expected in last.message and "\n" not in last.message
    assert not (folder / RESULT_FILE).exists()
    return last.message


def test_child_refuses_a_combined_job_without_clinical_facts_before_reading_the_ct(tmp_path):
    write_job(tmp_path, PredictJob("P1", "missing-ct.nrrd", (), None, "combined", None, 1, None))
    message = assert_input_error(tmp_path, run_child(tmp_path),
                                 "Clinical facts: none given, but the combined model needs all four")
    assert "lines=1|2+" in message  # says what to give


def test_child_reports_a_mask_drawn_on_another_image_as_one_line(tmp_path):
    lesion = write_small_case(tmp_path, mask_origin=(500.0, 500.0, 500.0))
    write_job(tmp_path, PredictJob("P1", "ct.nrrd", (lesion,), TOKENS, "combined", None, 1, None))
    completed = run_child(tmp_path)
    assert_input_error(tmp_path, completed, f"Lesion '{UTF8_NAME}': the mask does not overlap the CT")
    assert StatusEvent("Reading the CT and the lesion masks") in events_of(tmp_path)
    assert "does not overlap" in completed.stderr  # the log has it too


def test_child_without_a_job_file_says_which_file_is_missing(tmp_path):
    assert_input_error(tmp_path, run_child(tmp_path), f"{tmp_path / JOB_FILE}': no such file")


def test_child_without_a_folder_prints_its_usage(tmp_path):
    completed = run_child(tmp_path / "absent")
    assert completed.returncode == 2 and "usage: python -m abcir.jobs FOLDER" in completed.stderr


def test_readers_job_gives_the_in_process_predictions(tmp_path):
    """The clinical model needs no extraction: the whole child path in a few seconds."""
    lesion = write_small_case(tmp_path)
    write_job(tmp_path, ReadersJob("ct.nrrd", "Dr A", "Dr B", (lesion,), (lesion,), None, TOKENS, "clinical", None, 1,
                                   None))
    completed = run_child(tmp_path)
    assert completed.returncode == 0, completed.stderr
    events = events_of(tmp_path)
    assert events[-1] == DoneEvent() and not any(isinstance(event, ErrorEvent) for event in events)
    result = json.loads((tmp_path / RESULT_FILE).read_text(encoding="utf-8"))
    readers = ReaderPredictions.from_dict(result["readers"], "result.json")
    expected = predict_readers(sitk.ReadImage(str(tmp_path / "ct.nrrd")), [], [], None, TOKENS, "clinical")
    assert readers == expected
    assert readers.a.probability == expected.a.probability and readers.consensus is None


def test_reader_predictions_round_trip_through_json():
    ct = small_ct()
    for consensus in ([], None):
        original = predict_readers(ct, [], [], consensus, TOKENS, "clinical")
        text = json.dumps(original.to_dict())
        again = ReaderPredictions.from_dict(json.loads(text), "readers.json")
        assert again == original and json.dumps(again.to_dict()) == text
    assert (again.consensus, again.note) == (None, "no consensus yet (give --chair to build one)")


@pytest.mark.parametrize("change, expected", [
    (lambda data: data.pop("b"), "field 'b' is missing"),
    (lambda data: data.update(note=3), "field 'note' must be str"),
    (lambda data: data["a"].update(schema="other"), "readers.json, field 'a': not an abcir prediction"),
])
def test_reader_predictions_from_dict_names_the_bad_field(change, expected):
    data = json.loads(json.dumps(predict_readers(small_ct(), [], [], [], TOKENS, "clinical").to_dict()))
    change(data)
    with pytest.raises(InputError, match=expected):
        ReaderPredictions.from_dict(data, "readers.json")
