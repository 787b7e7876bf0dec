"""Prompt studies: the spec (:mod:`.spec`), the run folder (:mod:`.folder`), running (:mod:`.run`),
verifying (:mod:`.verify`) and the report (:mod:`.report`)."""
