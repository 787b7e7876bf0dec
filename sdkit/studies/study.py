"""The module a study's run, verify and report lived in before they were split (kept for code that
imports it): see :mod:`sdkit.studies.run`, :mod:`sdkit.studies.verify`, :mod:`sdkit.studies.report`
and :mod:`sdkit.studies.folder`."""

from sdkit.studies.folder import load_manifest, study_sweep
from sdkit.studies.report import write_report
from sdkit.studies.run import StudyRun, make_backend, run_study
from sdkit.studies.verify import ImageCheck, Verification, verify_study

__all__ = [
    "ImageCheck",
    "StudyRun",
    "Verification",
    "load_manifest",
    "make_backend",
    "run_study",
    "study_sweep",
    "verify_study",
    "write_report",
]
