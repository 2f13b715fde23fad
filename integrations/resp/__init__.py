"""The RESP2/RESP3 listener: a sans-IO codec, a command table, and an asyncio server."""
