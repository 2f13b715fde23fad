"""The asyncio listener: connections, batching, limits, idle timeouts, graceful shutdown.

Each received chunk is parsed into as many complete commands as it holds; they run one after
the other (commands are synchronous: the store lives in this process's memory). Replies are not
written at once: as in Redis (``handleClientsWithPendingWrites`` before it sleeps), every output
of a connection is queued and the queues of all connections are written once the event loop has
run every read that was ready, one write per connection. That is how pipelined requests are
answered in batches, and it saves a wake-up of the client per write when many connections are
busy: on loopback a write that wakes a sleeping reader costs more kernel time than the write.
With durability ``always`` that is also where the group commit happens: one commit per changed
store for all the replies of the turn.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import time
from typing import Any, cast

from faster_backend import StoreClosedError
from faster_backend.config import Config
from faster_backend.integrations.resp import blocking, fastlane
from faster_backend.integrations.resp import commands as _commands  # noqa: F401 (registers)
from faster_backend.integrations.resp.blocking import Block
from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands import pubsub
from faster_backend.integrations.resp.deferred import Deferred
from faster_backend.integrations.resp.dispatch import CLOSE, error_reply, execute, touch_keys
from faster_backend.integrations.resp.encoder import BULK_HEADERS, INT_REPLIES, encode, encode_error
from faster_backend.integrations.resp.protocol import RequestParser
from faster_backend.integrations.resp.state import ServerState
from faster_backend.integrations.resp.table import inline_commands
from faster_backend.integrations.resp.types import OK, Raw, RespError

log = logging.getLogger(__name__)

_monotonic = time.monotonic
_NO_LIMIT = 1 << 62  # client-output-buffer-limit 0: none, as in Redis
_perf = time.perf_counter
INLINE = inline_commands()
_GET = INLINE[b"get"]
_HIGH_WATER = 64 * 1024  # asyncio's and uvloop's default high-water mark
_BULK = BULK_HEADERS
_INTS = INT_REPLIES
_LANE = fastlane.scan_run is not None

MAXCLIENTS = b"-ERR max number of clients reached\r\n"
INTERNAL_ERROR = b"-ERR internal error, closing the connection\r\n"
DENIED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no"
    b" password is set for the default user. In this mode connections are only accepted from"
    b" the loopback interface. If you want to connect from external computers to Redis you may"
    b" adopt one of the following solutions: 1) Just disable protected mode sending the command"
    b" 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from"
    b" the same host the server is running, however MAKE SURE Redis is not publicly accessible"
    b" from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2)"
    b" Alternatively you can just disable the protected mode by editing the Redis configuration"
    b" file, and setting the protected mode option to 'no', and then restarting the server. 3)"
    b" If you started the server manually just for testing, restart it with the"
    b" '--protected-mode no' option. 4) Set up an authentication password for the default user."
    b" NOTE: You only need to do one of the above things in order for the server to start"
    b" accepting connections from the outside.\r\n"
)


def is_denied(config: Config, peer_host: str | None) -> bool:
    """Protected mode: without a password only loopback (and Unix socket) peers get in."""
    server = config.server
    if not server.protected_mode or server.requirepass is not None or not peer_host:
        return False
    try:
        ip = ipaddress.ip_address(peer_host.split("%")[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
    return not ip.is_loopback


def _addr(info: Any) -> str:
    if isinstance(info, tuple) and len(info) >= 2:
        host = str(info[0])
        return f"[{host}]:{info[1]}" if ":" in host else f"{host}:{info[1]}"
    return str(info or "")


class Connection(asyncio.Protocol):
    """One client socket: feeds the parser, runs commands, writes replies in batches."""

    def __init__(self, server: RespServer) -> None:
        self.server = server
        self.state = server.state
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self.parser: RequestParser | None = None
        self.epoch = -1
        self.metrics = server.metrics
        self.closed = asyncio.get_running_loop().create_future()
        # While a blocking command (BLPOP...) waits, the commands pipelined after it wait too.
        self.parked: list[list[bytes]] | None = None
        self.resume: list[list[bytes]] = []
        self.waiter: blocking.Waiter | None = None
        # The transport asked us to stop (its buffer passed the high-water mark): only then can
        # replies pile up towards the output buffer limit.
        self.writing_paused = False
        self.output_limit = server.config.server.client_output_buffer_limit or _NO_LIMIT
        # Output waiting for the end of this loop turn (RespServer.flush); every write to the
        # client goes through it, so replies and pushed messages keep their order.
        self.obuf: list[bytes] = []
        self.obuf_size = 0
        self.queued = False
        self.close_after = False  # close once the queued output is written (QUIT, errors)

    # -- lifecycle -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        state = self.state
        config = state.config
        peer = transport.get_extra_info("peername")
        if self.server.closing:
            transport.abort()
            return
        if len(state.clients) >= config.server.maxclients:
            state.rejected_connections += 1
            transport.write(MAXCLIENTS)
            transport.close()
            return
        host = peer[0] if isinstance(peer, tuple) else None
        if is_denied(config, host):
            log.warning("protected mode: refused connection from %s", host)
            state.rejected_connections += 1
            transport.write(DENIED)
            transport.close()
            return
        state.connections_received += 1
        client = Client(
            state,
            state.new_client_id(),
            _addr(peer),
            _addr(transport.get_extra_info("sockname")),
            kill=self.kill,
        )
        state.clients[client.id] = client
        self.client = client
        pubsub.attach(client, self)
        self.parser = RequestParser(
            config.server.proto_max_bulk_len,
            config.server.client_query_buffer_limit,
            client.authenticated,
        )
        self._set_output_limit(config.server.client_output_buffer_limit)
        self.epoch = state.config_epoch
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client
        if client is not None:
            client.unwatch()
            if self.waiter is not None:
                blocking.cancel(self.waiter)
                self.waiter = None
            pubsub.detach(client)
            self.state.clients.pop(client.id, None)
            self.client = None
        self.server.connections.discard(self)
        self.obuf.clear()
        self.obuf_size = 0
        if not self.closed.done():
            self.closed.set_result(None)

    def kill(self) -> None:
        """Close after the output already queued (CLIENT KILL, idle timeout, shutdown)."""
        self.close_soon()

    # -- output (the pub/sub Outlet interface: messages to subscribers come through here) ----

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the flush at the end of this loop turn."""
        if not self.queued:
            self.queued = True
            self.server.queue(self)
        self.obuf.append(data)
        self.obuf_size += len(data)

    def is_closing(self) -> bool:
        t = self.transport
        return t is None or t.is_closing() or self.close_after

    def get_write_buffer_size(self) -> int:
        t = self.transport
        return self.obuf_size + (0 if t is None else t.get_write_buffer_size())

    def get_extra_info(self, name: str) -> Any:
        return None if self.transport is None else self.transport.get_extra_info(name)

    def abort(self) -> None:
        self.obuf.clear()
        self.obuf_size = 0
        if self.transport is not None:
            self.transport.abort()

    def close_soon(self) -> None:
        """Close once the output queued so far is written; later requests are ignored."""
        t = self.transport
        if t is None or t.is_closing() or self.close_after:
            return
        self.close_after = True
        if not self.queued:
            self.queued = True
            self.server.queue(self)

    def flush(self) -> None:
        """Write the queued output in one write (then close, when asked to)."""
        self.queued = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        obuf = self.obuf
        if obuf:
            payload = obuf[0] if len(obuf) == 1 else b"".join(obuf)
            obuf.clear()
            self.obuf_size = 0
            transport.write(payload)
            self.state.net_output_bytes += len(payload)
        if self.close_after:
            transport.close()
            return
        # Replies pile up only once the transport stopped sending and paused us.
        if self.writing_paused and transport.get_write_buffer_size() > self.output_limit:
            client = self.client
            log.warning(
                "client %d (%s) closed: output buffer over client-output-buffer-limit",
                -1 if client is None else client.id,
                "" if client is None else client.addr,
            )
            transport.abort()

    def pause_writing(self) -> None:
        # The peer reads slower than it sends: stop reading until our replies drain.
        self.writing_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _refresh_limits(self) -> None:
        server = self.state.config.server
        assert self.parser is not None
        self.parser.set_limits(server.proto_max_bulk_len, server.client_query_buffer_limit)
        self._set_output_limit(server.client_output_buffer_limit)
        self.epoch = self.state.config_epoch

    def _set_output_limit(self, limit: int) -> None:
        self.output_limit = limit = limit or _NO_LIMIT
        if self.transport is not None:
            # The transport must pause us before its buffer can pass the limit, since the
            # buffer is only measured while paused.
            self.transport.set_write_buffer_limits(high=min(limit, _HIGH_WATER))

    # -- requests --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or self.close_after:
            return
        # One function for the whole read (a call costs as much as several checks here).
        try:
            parser = self.parser
            transport = self.transport
            assert parser is not None and transport is not None
            state = self.state
            if self.epoch != state.config_epoch:
                self._refresh_limits()
            client.last_interaction = _monotonic()
            out: list[bytes] = []
            append = out.append
            if data:
                state.net_input_bytes += len(data)
                if (
                    data[0] == 0x2A  # '*': a multibulk frame
                    and _LANE
                    and self.metrics is None
                    and self.parked is None
                    and client.multi is None
                    and client.authenticated
                    and not client.pubsub
                    and parser.between_frames
                ):
                    used, answered = fastlane.run(client, data, out, parser.max_bulk_len)
                    if used:
                        state.commands_processed += answered
                        data = data[used:]
                cmds, err = parser.feed(data)
            else:  # resuming what was pipelined behind a blocking command
                if transport.is_closing():
                    return
                cmds, err = self._resumed(), None
            if self.parked is not None:
                # Still read while blocked (a closed connection must be noticed), but stop
                # reading once a flood of commands piles up behind the blocked one.
                self.parked.extend(cmds)
                cmds = []
                if len(self.parked) > 10_000:
                    transport.pause_reading()
            if cmds:
                metrics = self.metrics
                get = INLINE.get
                bulk = _BULK
                ints = _INTS
                # Plain commands of a plain connection take the inline path: no dispatch calls, and
                # the commonest replies are encoded in place. Every 100 ns counts when clients
                # pipeline; anything special goes through dispatch.execute.
                plain = client.multi is None and client.authenticated and not client.pubsub
                proto = client.proto
                done = 0
                for argv in cmds:
                    done += 1
                    if plain:
                        spec = get(argv[0])
                        if spec is _GET and metrics is None and len(argv) == 2:
                            # GET, the commonest command, without the handler call. A miss or
                            # an error goes on to the handler (a key holding another type, and
                            # the error reply, are its business).
                            value: bytes | bool | None
                            try:
                                value = client.kv.read(argv[1])
                            except Exception:
                                value = False
                            if value.__class__ is bytes:
                                spec.calls += 1
                                n = len(value)  # type: ignore[arg-type]
                                if n < 1024:
                                    append(bulk[n])
                                    append(value)  # type: ignore[arg-type]
                                    append(b"\r\n")
                                else:
                                    append(b"$%d\r\n%b\r\n" % (n, value))
                                continue
                            if value is None and argv[1] not in client.keyspace.objects:
                                spec.calls += 1
                                append(b"$-1\r\n" if proto == 2 else b"_\r\n")
                                continue
                        if spec is not None and spec.min_args <= len(argv) <= spec.max_args:
                            spec.calls += 1
                            try:
                                if metrics is None:
                                    reply = spec.handler(client, argv)
                                else:
                                    t0 = _perf()
                                    try:
                                        reply = spec.handler(client, argv)
                                    finally:
                                        metrics.observe(_perf() - t0)
                            except Exception as e:
                                reply = error_reply(spec, e)
                            else:
                                if spec.write and client.keyspace.watchers:
                                    touch_keys(client, spec, argv)
                            t = reply.__class__
                            if t is bytes:
                                n = len(reply)
                                if n < 1024:
                                    append(bulk[n])
                                    append(reply)
                                    append(b"\r\n")
                                else:
                                    append(b"$%d\r\n%b\r\n" % (n, reply))
                            elif t is int:
                                if -1 <= reply < 1023:
                                    append(ints[reply + 1])
                                else:
                                    append(b":%d\r\n" % reply)
                            elif reply is OK:
                                append(b"+OK\r\n")
                            elif reply is None:
                                append(b"$-1\r\n" if proto == 2 else b"_\r\n")
                            elif t is Raw:
                                append(reply)
                            elif t is Block:
                                self._block(reply, cmds[done:])
                                break
                            elif t is Deferred:
                                self._defer(reply, cmds[done:])
                                break
                            else:
                                append(encode(reply, proto))
                            continue
                    if metrics is None:
                        reply = execute(client, argv)
                    else:
                        t0 = _perf()
                        reply = execute(client, argv)
                        metrics.observe(_perf() - t0)
                    if reply is CLOSE:
                        client.closing = True
                        break
                    if reply.__class__ is Block:
                        self._block(reply, cmds[done:])
                        break
                    if reply.__class__ is Deferred:
                        self._defer(reply, cmds[done:])
                        break
                    append(encode(reply, client.proto))
                    if client.closing:
                        break
                    plain = client.multi is None and client.authenticated and not client.pubsub
                    proto = client.proto
                state.commands_processed += done
                client.last_cmd = argv[0]
            if out:
                payload = out[0] if len(out) == 1 else b"".join(out)
                if not self.queued:
                    self.queued = True
                    self.server.queue(self)
                self.obuf.append(payload)
                self.obuf_size += len(payload)
            if cmds:
                if client.closing:
                    self.close_soon()
                    return
                if parser.authenticated is not client.authenticated:
                    parser.authenticated = client.authenticated
            if err is not None:
                if err.message is not None:
                    log.info("client %d (%s): %s", client.id, client.addr, err.message)
                    self.write(encode_error("ERR " + err.message))
                else:
                    log.warning(
                        "client %d (%s) closed: query buffer over client-query-buffer-limit",
                        client.id,
                        client.addr,
                    )
                self.close_soon()
        except Exception:  # a bug must cost one connection, never the server
            self._internal_error()

    def _internal_error(self) -> None:
        log.exception("closing a connection after an internal error")
        if self.transport is not None:
            self.write(INTERNAL_ERROR)
            self.close_soon()

    def _block(self, blk: Block, rest: list[list[bytes]]) -> None:
        assert self.client is not None and self.transport is not None
        self.parked = list(rest)
        self.waiter = blocking.block(self.client, blk, self._unblocked)

    def _defer(self, deferred: Deferred, rest: list[list[bytes]]) -> None:
        """Wait for ``deferred``'s reply (deferred.py) as for a blocking command's."""
        self.parked = list(rest)

        def done(future: asyncio.Future[Any]) -> None:
            try:
                future.result()
                reply = deferred.then()
            except Exception as exc:  # the settling's error is the command's reply
                transport = self.transport
                if isinstance(exc, StoreClosedError) and (
                    transport is None or transport.is_closing()
                ):
                    return  # shutdown closed the store under the settling: no one to tell
                log.error("a deferred reply failed", exc_info=exc)
                reply = RespError(f"ERR {exc}")
            self._unblocked(reply)

        asyncio.wrap_future(deferred.future).add_done_callback(done)

    def _unblocked(self, reply: Any) -> None:
        """The blocking command got its reply: send it, then run what was pipelined after."""
        self.waiter = None
        self.resume = self.parked or []
        self.parked = None
        client, transport = self.client, self.transport
        if client is None or transport is None or transport.is_closing():
            return
        self.write(encode(reply, client.proto))  # durable first, with always (RespServer.flush)
        if not transport.is_reading():
            transport.resume_reading()
        if self.resume:
            self.data_received(b"")

    def _resumed(self) -> list[list[bytes]]:
        cmds, self.resume = self.resume, []
        return cmds

    def eof_received(self) -> bool | None:
        # The client will send nothing more: close once the replies queued for it are written
        # (returning True keeps the transport open until then; a plain close would drop them
        # if the end of the stream came in the same loop turn as its last requests).
        self.close_soon()
        return True


class RespServer:
    """The listener and its periodic jobs; ``run()`` serves until SIGTERM/SIGINT/SHUTDOWN."""

    def __init__(self, config: Config, metrics: Any = None) -> None:
        self.config = config
        self.state = ServerState(config)
        self.state.db(0)  # open the data directory now: a locked directory fails at start-up
        self.metrics = metrics
        self.connections: set[Connection] = set()
        self._flush_list: list[Connection] = []  # connections with output queued this turn
        self.closing = False
        self._server: asyncio.base_events.Server | None = None
        self._stop: asyncio.Event | None = None
        self._cron_task: asyncio.Task[None] | None = None

    def queue(self, conn: Connection) -> None:
        """``conn`` has output: write it once this loop turn has run every ready read."""
        if not self._flush_list:
            asyncio.get_running_loop().call_soon(self.flush)
        self._flush_list.append(conn)

    def flush(self) -> None:
        """Write every queued output; with durability always, commit first (one group commit
        for all the replies of the turn: none leaves before the writes it acknowledges are
        durable)."""
        conns = self._flush_list
        if not conns:
            return
        self._flush_list = []
        if self.state.sync_writes:
            try:
                self.state.sync()
            except Exception:  # nothing may be acknowledged: those clients get an error
                log.exception("commit failed: closing the connections waiting on it")
                for conn in conns:
                    conn.obuf[:] = [INTERNAL_ERROR]
                    conn.close_after = True
        for conn in conns:
            try:
                conn.flush()
            except Exception:  # a bug must cost one connection, never the server
                log.exception("closing a connection after an internal error")
                if conn.transport is not None:
                    conn.transport.abort()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = self.config.server
        if self._stop is None:
            self._stop = asyncio.Event()
        self.state.request_shutdown = self._stop.set
        hosts = server.bind.split()
        self._server = await loop.create_server(
            lambda: Connection(self),
            host=hosts if len(hosts) > 1 else hosts[0],
            port=server.port,
            reuse_address=True,
            backlog=511,
        )
        self.state.tcp_port = self.port
        self._cron_task = loop.create_task(self._cron())

    def request_shutdown(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, ready: Any = None) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Handlers first: a signal that arrives once the port accepts must stop us cleanly.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown)
        await self.start()
        if ready is not None:
            ready(self)
        assert self._stop is not None
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop accepting, let replies of commands already run reach their clients, close."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self._cron_task is not None:
            self._cron_task.cancel()
        conns = list(self.connections)
        for conn in conns:
            conn.kill()
        if conns:
            await asyncio.wait([c.closed for c in conns], timeout=grace)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        # Objects are written back, then every store checkpoints as it closes (with a data
        # directory): one point for all of them.
        self.state.close()
        log.info("server stopped")

    async def _cron(self) -> None:
        """Once a second: close idle clients (timeout) and run incremental expiry."""
        while not self.closing:
            await asyncio.sleep(1.0)
            timeout = self.config.server.timeout
            if timeout > 0:
                limit = _monotonic() - timeout
                for conn in list(self.connections):
                    c = conn.client
                    if c is not None and c.last_interaction < limit:
                        log.info("client %d (%s) closed: idle timeout", c.id, c.addr)
                        conn.kill()
            try:
                self.state.tick()
            except Exception:  # pragma: no cover - a closed store during shutdown
                log.exception("periodic housekeeping failed")
