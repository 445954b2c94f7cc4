"""The processor's HTTP side: metrics and probes, and the operator console in the browser.

server: uvicorn in a thread; app: the ASGI app; routes, picking_routes: the console's API; live: what the
live view shows; frozen: frames stopped on to pick the product; auth: the console's token; static: the page.
"""
