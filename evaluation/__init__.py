"""ar3d.evaluation: `ar3d eval` — a reasoning benchmark, the field's metrics and a report.

Modules: ``benchmark`` (the JSONL format, the bundled ar3d-reason suite), ``features`` (CLIP,
Inception-v3 and DINOv2 feature extractors, loaded once, batched), ``metrics`` (CLIP score,
kernel distance, Fréchet distance), ``runner`` (generate → mesh → render → score, resumable;
its stages ``generation``, ``scoring``, ``references``), ``comparison`` (two checkpoints), ``report``
and ``comparison_report`` (Markdown/HTML reports, plots, render grids).

Importing this package is light (no torch): the render workers import ``_jobs`` for their
write-back job.
"""
