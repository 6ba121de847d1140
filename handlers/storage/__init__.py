"""Storage: the one place that builds COS and CI clients, the adapter that speaks the function's language
(ObjectState, tags, bytes) over them, and the rules of a tag set within COS's limits; where the function keeps its
own records (REPORT_PREFIX or STATE_PREFIX). May use intake/ (the models) only; reading an object's content for
its hash is checking/reads.py's."""
