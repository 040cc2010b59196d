"""Email for cadences.

``templates`` (merge fields: validation, rendering), ``checks`` (what must hold before a send,
one ErrorCode each, and the daily caps), ``settings`` (org/user email settings), ``message``
(the MIME message, threading), ``smtp_sender`` (the SMTP Sender behind AutoSendAnEmail
steps, with its outbox), ``tracking`` (signed open/click tokens), ``inbound`` (the reply and
bounce listener) and ``engagement`` (events to the runtime, step metrics).
"""
