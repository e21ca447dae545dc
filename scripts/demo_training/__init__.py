"""The demo model's training stages, one module each (``scripts/train_demo.py`` runs them):
:mod:`.data` (splits, the ``refs`` stage), :mod:`.vqvae`, :mod:`.encode`, :mod:`.policy`,
:mod:`.evaluate`; :mod:`.report` records each run in ``training_report.json``."""
