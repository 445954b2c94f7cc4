"""A plant's fleet of cameras on a Ray cluster: one stream processor per camera, placed, restarted and moved by Ray,
behind one forwarder where subscribers connect and one control socket that routes by camera id (docs/fleet.md).

Only streamer.fleet.fleet and streamer.fleet.worker import Ray (the `fleet` extra); the configuration does not.
"""
