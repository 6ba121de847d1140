"""CI's own account of a job: its job API (confirm a callback, look jobs up, list them per queue) and the expansion
of a WorkflowFinish into its jobs. May use storage/ (the clients) and intake/; decides no verdict. (CI's file-hash
API is still in checking/serverhash.py: docs/architecture.md.)"""
