"""The HTTP face: the aiohttp app, its routes, event streams, the guard (tokens, hosts, origins, limits),
idempotency, run logs and the page."""
