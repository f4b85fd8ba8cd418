"""The test doubles, apart from the tests: Discord (REST over aioresponses or loopback HTTP, its
limits, the gateway), the CAD (`fake_cad`, which is the sandbox CAD of `bot/sandbox/`), Sonoran's
SignalR hub, and the loopback plumbing they share."""
