"""Checking: a verdict per object. The ETag rule, the content hash read streamed or as parallel ranges, the planning
by the speed this container measured, CI hashing the object itself (VERIFY_MODE=server) within a ledger of its
billed jobs per version, and what the verdicts make of a job's outcome. May use ci/, storage/ and intake/; acting on
a verdict is actions/."""
