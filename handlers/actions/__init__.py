"""Actions on a verdict (ACTION_VERIFIED, ACTION_FAILED): which one applies, tagging in place, and moving without
ever losing the bytes. May use checking/ (a move checks what is at its destination), storage/ and intake/."""
