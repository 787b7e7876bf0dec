"""Notebook front ends: rich display without widgets (:mod:`.display`) and the ipywidgets panels
(:mod:`.widgets`: PromptLab, SweepPanel, GridViewer)."""
