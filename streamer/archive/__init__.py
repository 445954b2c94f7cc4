"""The archive: what the line saw, kept within bounds (docs/archive.md).

A directory per archive: frames (JPEG or PNG), each frame's published result (the bus's JSON, masks included),
the supports in force, and a SQLite index (WAL) of frames and of the audit trail. Written off the frame loop by
one thread (streamer.archive.writer); read back by replay, `persense run --source archive:PATH` and the console's
review page (streamer.archive.reader).
"""
