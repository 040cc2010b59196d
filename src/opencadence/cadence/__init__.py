"""The cadence runtime: definitions, activation, transitions, actions and workers.

Modules: ``graph`` (immutable graph), ``validate`` (activation checks), ``schedule`` (start
and due dates), ``decision`` and ``engine`` (pure transitions), ``store`` (the only SQL),
``worker`` (timers), ``actions`` (the Sales Engagement invocable actions), ``runtime``
(activation, editing, rep work, calls, engagement), ``sender`` (email-sender interface),
``definition_file`` (YAML/JSON import and export). Its commands are in ``opencadence.cli``.
"""
