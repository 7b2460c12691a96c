"""The ``/stats`` HTTP API: the dashboard's figures as cached, read-only JSON (``python -m core.api``)."""
