"""Cohort batches: every patient of a cohort table extracted and predicted, resumably, here or on a Dask cluster.

    abcir batch --cohort cohort.csv --out DIR [--jobs N] [--scheduler tcp://host:port]

The cohort table is the one ``abcir train`` reads and ``abcir make-cohort``
writes (format: ``abcir.cohort.table``). Batch needs ``patient_id``, ``ct`` and
``lesions`` in every row; the clinical facts, when a row gives them, feed the
clinical and combined models; the outcomes and every other column are carried
into predictions.csv, the outcomes and facts as 1/0.

What DIR holds::

    patients/<id>.json   one finished patient: lesion facts, 1130 values per lesion, predictions
    cache/               lesion features (``abcir.features.cache``), reused by every later run
    features.parquet     all lesions of all finished patients (also features.csv), feature_table layout
    predictions.csv      one row per patient in the ``abcir evaluate`` input format
    failures.csv         the patients that failed in the last run: stage and reason
    batch.json           what the last run used (cohort, models, software) and counted

Resuming: a patient is done when its ``patients/<id>.json`` exists, reads back,
and was made from the same cohort row (as ``cohort_table.cohort_cells`` writes
it), input files (size and modification time), models and software; any other
patient is (re)computed. Every file is written under a temporary name and
renamed, so a run killed at any moment leaves whole files only (and
temporaries, which the next run deletes), and the next run finishes what is
missing. Lesions finished before the kill come from
the cache. Two runs must not write into the same DIR at the same time.

A failing patient (unreadable CT, lesion refused by pyradiomics, ...) is listed
in failures.csv with the reason; the others go on. A prediction that fails
(e.g. RECIST: more than two targets in one organ) keeps the patient's features
and is listed with stage ``predict``.

``--scheduler`` runs the same work on an existing Dask distributed cluster:
per patient one task reads the CT and lesions and resamples them, then one
task per lesion computes its features, then one task predicts. Workers read
the input files and the cache, so DIR and the cohort must be on storage they
share; this process writes every output. The values are those of a local run:
the same functions compute them.

The modules, in the order the work flows:

- ``work``: one patient's fingerprint, its reading and resampling (``plan_work``), its lesions' values and
  predictions; the same functions run here and on cluster workers.
- ``runners``: the patients still to do, run in this process, a local process pool or a Dask cluster.
- ``store``: the output folder's layout, the patient records it keeps, the manifest and the run summary.
- ``tables``: features, predictions and failures as tables.
- ``run``: ``run_batch``, which ties them together.
"""
