"""ci-callback-verifier: verify 数据万象 job outputs in COS against the MD5s CI reports.

A callback flows triggers/ → intake/ → ci/ → checking/ → actions/ → operations/, over storage/ (the COS adapter);
reconcile/ finds the callbacks that never came. At the top: app (routing), pipeline and process (the steps), and
config, deadline, errors and log, which every layer uses. docs/architecture.md: the layers and who may import whom."""
