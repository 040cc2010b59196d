"""Email for cadences: ``templates`` (merge fields), ``checks`` (what must hold before a send,
one ErrorCode each, and the daily caps), ``settings`` (org/user email settings) and
``smtp_sender`` (the SMTP Sender behind AutoSendAnEmail steps, with its outbox)."""
