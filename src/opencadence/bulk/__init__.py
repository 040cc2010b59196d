"""Bulk API jobs: 2.0 ingest and query, 1.0 JSON jobs (``jobs``), run by the workers
(``runner``); CSV as the Bulk API writes it (``csvdata``). Tables: ``storage/bulk.py``."""
