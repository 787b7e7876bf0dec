"""Prompt studies: the spec (:mod:`.spec`), the run folder (:mod:`.folder`), running (:mod:`.run`),
verifying (:mod:`.verify`) and the report (:mod:`.report`)."""


def __getattr__(name: str):
    if name == "study":  # the module before the split, still reached as ``sdkit.studies.study`` after ``import sdkit``
        import importlib

        return importlib.import_module("sdkit.studies.study")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
