"""The cadence runtime: definitions, activation, transitions, actions and workers.

Modules: ``graph`` (immutable graph), ``validate`` (activation checks), ``schedule`` (start
and due dates), ``decision`` and ``engine`` (pure transitions), ``loading`` (graphs and
situations built from the rows ``storage.runs`` reads), ``applying`` (decisions written
through ``storage.batch`` and ``storage.runs``), ``settings`` (runtime ``Config``), ``worker``
(timers), ``actions`` (the Sales Engagement invocable actions), ``runtime`` (activation,
editing, rep work, calls, engagement), ``sender`` (email-sender interface),
``definition_file`` (YAML/JSON import and export); its commands are in ``opencadence.cli``.
No module here imports SQLAlchemy: every statement runs in ``storage``.
"""
