"""Pure reminder decisions: no I/O, time passed in explicitly."""
