"""What waits on someone: deadlines that climb an escalation path, and the inbox."""
