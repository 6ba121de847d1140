"""Notifications (NOTIFY_URL): what a message says, each vendor's format and signature, delivery, the record
of what was announced, and the step the pipeline calls (notify.py)."""
