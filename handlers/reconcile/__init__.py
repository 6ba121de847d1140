"""Reconciliation: finding and checking jobs whose callback was lost — the sweep, its checkpoint, the fan-out
to asynchronous invocations and the backfill of history. It may use CI's job API, the storage adapter, the
dispatcher's public `invoke` and the pipeline; only the timer and worker triggers and dev commands import it."""
