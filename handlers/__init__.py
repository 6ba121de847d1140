"""ci-callback-verifier: verify 数据万象 job outputs in COS against the MD5s CI reports."""
