"""I/O implementations: the AIO segment writer, and (later) disk store and TCP."""
