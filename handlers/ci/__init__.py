"""CI's own account of a job: its job API (confirm a callback, look jobs up, list them per queue), the expansion
of a WorkflowFinish into its jobs, and its file-hash API (the synchronous filehash, FileHashCode jobs). May use
storage/ (the clients) and intake/; decides no verdict."""
