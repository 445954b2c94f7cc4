"""Items passed, not frames: tracking across frames, line crossings and per-item measurements.

Pure algorithm over numpy arrays, no stream or socket here: `measure` (per-instance figures), `tracker`
(persistent ids on a moving belt), `crossing` (counting lines). streamer.stream.tally wires them into the stream.
"""
