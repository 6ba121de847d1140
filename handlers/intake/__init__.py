"""Intake: what arrives and who may send it. The HTTP request and answer, the kinds of invocation (and the worker
event this function sends itself: dispatch), CI's XML/JSON read into the typed models, the token and the
allow-lists. Uses only config, deadline, errors and log; every other package may use it."""
