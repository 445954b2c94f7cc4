"""Subscribe to `persense run` and print each frame's count; written from docs/stream-protocol.md alone.

Needs only pyzmq and pycocotools:  python examples/subscriber.py [ENDPOINT] [--save DIR] [--max N]
With CURVE (docs/security.md):      ... --client-key plc1.key_secret --server-public-key server.key
"""

import argparse
import json
import pathlib

import zmq
import zmq.auth
from pycocotools import mask as mask_utils


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5556")
    parser.add_argument("--camera", default="", help="only this camera (default: all)")
    parser.add_argument("--save", type=pathlib.Path, help="save overlay JPEGs here (run with --overlay)")
    parser.add_argument("--max", type=int, default=0, help="stop after this many results (0: never)")
    parser.add_argument("--client-key", help="CURVE: this client's NAME.key_secret (from 'persense keys')")
    parser.add_argument("--server-public-key", help="CURVE: the server's NAME.key")
    args = parser.parse_args()

    sock = zmq.Context().socket(zmq.SUB)
    if args.client_key:  # CURVE: our key pair and the server's public key, before connecting
        sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(args.client_key)
        sock.curve_serverkey, _ = zmq.auth.load_certificate(args.server_public_key)
    sock.connect(args.endpoint)
    # Topics are persense/<camera>/result and persense/<camera>/status; subscriptions match by prefix.
    sock.setsockopt(zmq.SUBSCRIBE, f"persense/{args.camera}/result".encode() if args.camera else b"persense/")
    last_seq, received, missed = {}, 0, 0
    while not args.max or received < args.max:
        topic, header, *parts = sock.recv_multipart()
        msg = json.loads(header)
        if msg["schema"] != "persense.result/1":
            continue  # persense.status/1: heartbeats and camera state changes
        received += 1
        camera, seq = msg["camera"], msg["seq"]
        if camera in last_seq and seq > last_seq[camera] + 1:
            missed += seq - last_seq[camera] - 1  # lost on the way (slow subscriber); a smaller seq is a restart
        last_seq[camera] = seq
        areas = [int(mask_utils.decode({"size": i["mask"]["size"], "counts": i["mask"]["counts"].encode()}).sum())
                 for i in msg["instances"] if "mask" in i]
        print(f"{camera} seq={seq} count={msg['count']} mean_area={sum(areas) / max(len(areas), 1):.0f}px")
        named = dict(zip(msg["parts"], parts))  # binary parts, named in order by the header
        if args.save and "overlay/jpeg" in named:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{camera}_{seq:08d}.jpg").write_bytes(named["overlay/jpeg"])
    print(f"{received} results, {missed} missed")


if __name__ == "__main__":
    main()
