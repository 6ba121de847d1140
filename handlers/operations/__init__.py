"""What operators and callers see: the answer's JSON, the audit reports in COS, the settled markers the sweep reads,
the notifications (NOTIFY_URL) and the report command (`python -m handlers.summary`). May use ci/, checking/
(outcomes), storage/ and intake/; it decides nothing about an object."""
