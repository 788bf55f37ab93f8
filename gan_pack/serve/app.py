"""`ganpack serve`: generators over HTTP in the Open Inference Protocol (KServe v2 REST, Triton's HTTP
API), with a dynamic batcher. Torch-free: Starlette + uvicorn (the [serve] extra); the protocol's
encoding is protocol.py, the batching batcher.py, the models and workers layout.py.

- GET /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, /v2/models/NAME/ready
- POST /v2/models/NAME/infer: JSON tensors, or the binary tensor data extension (what tritonclient
  sends by default); errors as {"error": "..."} with 400, 404, 413 or 503
- GET /v1/models/NAME/sample.png?n=16&label=3&seed=1 (and sample.npy): seeded like `ganpack sample`
- image models (upscalers, restorers; images.py): infer with an `image` tensor, and
  POST /v1/models/NAME/apply with PNG/JPEG/WebP bytes, answered with a PNG
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import gan_pack
from gan_pack.errors import GanPackError
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.image_model import ImageModel
from gan_pack.serve import images
from gan_pack.serve.batcher import Batcher
from gan_pack.serve.layout import ServeOptions, lower_priority
from gan_pack.serve.protocol import (
    HEADER,
    HTTPError,
    SampleQuery,
    infer_response,
    model_metadata,
    parse_infer,
    sample_body,
)

PARSE_INLINE_BYTES = 256 << 10          # larger request bodies are parsed off the event loop


class Server:
    """The served models, their batchers, and the handlers of every endpoint."""

    def __init__(self, models: dict[str, OnnxGenerator | ImageModel], options: ServeOptions,
                 workers: dict[str, int]):
        self.models, self.options = models, options
        self.workers = {name: workers.get(name, options.workers) for name in models}
        self.executor = ThreadPoolExecutor(max_workers=max(1, sum(self.workers.values())),
                                           thread_name_prefix="onnxruntime", initializer=lower_priority)
        self.parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")
        self.batchers: dict[str, Batcher] = {}
        self.gates: dict[str, asyncio.Semaphore] = {}
        self.tasks: list[asyncio.Task] = []

    def named(self, name: str):
        if name not in self.models:
            raise HTTPError(404, f"unknown model {name!r}; this server has {', '.join(sorted(self.models))}")
        return self.models[name]

    def start(self) -> None:
        for name, g in self.models.items():
            if isinstance(g, ImageModel):          # no batching: a call per request, `workers` at a time
                self.gates[name] = asyncio.Semaphore(self.workers[name])
                continue
            batcher = Batcher(g, self.options, self.executor, self.workers[name])
            self.batchers[name] = batcher
            self.tasks += [asyncio.create_task(batcher.run()) for _ in range(batcher.workers)]

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.executor.shutdown(wait=True)
        self.parser.shutdown(wait=True)

    # ------------------------------------------------------------ handlers: (status, body dict)

    async def live(self, params: dict, query) -> dict:
        return {"live": True}

    async def ready(self, params: dict, query) -> dict:
        return {"ready": bool(self.batchers or self.gates)}

    async def server(self, params: dict, query) -> dict:
        return {"name": "gan_pack", "version": gan_pack.__version__, "extensions": ["binary_tensor_data"]}

    async def metadata(self, params: dict, query) -> dict:
        g = self.named(params["name"])
        if isinstance(g, ImageModel):
            return images.image_model_metadata(params["name"], g)
        return model_metadata(params["name"], g)

    async def model_ready(self, params: dict, query) -> dict:
        self.named(params["name"])
        return {"name": params["name"], "ready": params["name"] in self.batchers or params["name"] in self.gates}

    def image_model(self, name: str) -> ImageModel:
        g = self.named(name)
        if not isinstance(g, ImageModel):
            raise HTTPError(400, f"{name} is a generator (it takes noise): GET /v1/models/{name}/sample.png")
        return g

    async def sample(self, name: str, fmt: str, query) -> tuple[bytes, str]:
        g = self.named(name)
        if isinstance(g, ImageModel):
            raise HTTPError(400, f"{name} is an image model: POST an image to /v1/models/{name}/apply")
        if fmt not in ("png", "npy"):
            raise HTTPError(404, f"sample.{fmt}: ask for sample.png (a grid) or sample.npy (an array)")
        request = SampleQuery.parse(query, self.options.max_images_per_request)
        images = await self.batchers[name].submit(request.feeds(g), request.n)
        rows = 10 if g.info.num_classes and request.label is None else None
        return sample_body(images, fmt, rows)

    async def infer(self, name: str, body: bytes, header: str | None) -> tuple[int, Iterator[bytes], dict, int]:
        """POST /v2/models/NAME/infer: (status, body chunks, headers, body length). A large body is
        parsed, and a JSON reply encoded, off the event loop, so other clients are answered meanwhile."""
        g = self.named(name)
        if isinstance(g, ImageModel):
            return await images.image_infer(self, name, body, header)
        limit = self.options.max_images_per_request
        loop = asyncio.get_running_loop()
        if len(body) > PARSE_INLINE_BYTES:
            # one at a time: each holds the interpreter's lock while it parses its JSON
            request = await loop.run_in_executor(self.parser, parse_infer, body, header, g, limit)
        else:
            request = parse_infer(body, header, g, limit)
        parts = await self.batchers[name].submit_parts(request.feeds, request.count)
        if request.binary_output:
            return 200, *infer_response(name, request, parts)
        return 200, *await loop.run_in_executor(self.parser, infer_response, name, request, parts)


async def read_body(scope, receive, limit: int, timeout: float) -> bytes:
    """The request body, refused (413) as soon as it is known to be over `limit` bytes (from its
    Content-Length, or while it arrives), and (408) if it does not arrive within `timeout` s."""
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"0")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the request body is {int(declared)} bytes; at most {limit} (--max-body-mb)")
    chunks, size, more = [], 0, True
    deadline = asyncio.get_running_loop().time() + timeout
    while more:
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
        except asyncio.TimeoutError:
            raise HTTPError(408, f"the request body did not arrive within {timeout:g} s") from None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise HTTPError(413, f"the request body is over {limit} bytes (--max-body-mb)")
        more = message.get("more_body", False)
    return b"".join(chunks)


def error_reply(e: Exception) -> tuple[int, bytes, dict]:
    """A mistake of the client's as its 4xx; anything else is a bug of ours: 500, and said on stderr."""
    if isinstance(e, HTTPError):
        status = e.status
    elif isinstance(e, GanPackError):
        status = 400
    else:
        status = 500
        print(f"gan_pack serve: internal error ({type(e).__name__}: {e})", file=sys.stderr)
    message = str(e) if status != 500 else f"internal error ({type(e).__name__})"
    return status, json.dumps({"error": message}).encode(), {"content-type": "application/json"}


def infer_handler(server: Server):
    """POST /v2/models/NAME/infer as a bare ASGI handler: requests skip Starlette's routing,
    middleware and Request objects on this hot path."""

    async def handle(scope, receive, send) -> None:
        name = scope["path"][len("/v2/models/"):-len("/infer")]
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == HEADER.lower().encode()), None)
        try:
            body = await read_body(scope, receive, server.options.max_body_bytes, server.options.read_timeout_s)
            status, chunks, headers, length = await server.infer(name, body, header)
        except Exception as e:  # noqa: BLE001 - every failure is answered; error_reply sorts 4xx from bugs
            status, content, headers = error_reply(e)
            chunks, length = iter([content]), len(content)
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": raw + [(b"content-length", str(length).encode())]})
        # a chunk at a time: the server waits for the client to take each (no copy of the whole reply)
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    return handle


class AsgiEndpoint:
    """A Starlette route endpoint that is a bare ASGI callable rather than a request handler."""

    def __init__(self, handler):
        self.handler = handler

    async def __call__(self, scope, receive, send) -> None:
        await self.handler(scope, receive, send)


def routes(server: Server, infer) -> list:
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def failure(e: Exception) -> Response:
        status, content, headers = error_reply(e)
        return Response(content, status_code=status, headers=headers)

    def json_route(path: str, handler) -> Route:
        async def endpoint(request):
            try:
                return JSONResponse(await handler(request.path_params, request.query_params))
            except Exception as e:  # noqa: BLE001 - see error_reply
                return failure(e)
        return Route(path, endpoint)

    async def sample(request):
        try:
            body, media = await server.sample(request.path_params["name"], request.path_params["fmt"],
                                              request.query_params)
            return Response(body, media_type=media)
        except Exception as e:  # noqa: BLE001 - see error_reply
            return failure(e)

    async def apply(request):
        name = request.path_params["name"]
        try:
            body = await read_body(request.scope, request.receive, server.options.max_body_bytes,
                                   server.options.read_timeout_s)
            chunks = await images.apply_body(server, name, body)
        except Exception as e:  # noqa: BLE001 - see error_reply
            return failure(e)
        return StreamingResponse(images.gated(server.gates[name], chunks), media_type="image/png")

    return [json_route("/v2/health/live", server.live), json_route("/v2/health/ready", server.ready),
            json_route("/v2", server.server), json_route("/v2/models/{name}", server.metadata),
            json_route("/v2/models/{name}/ready", server.model_ready),
            Route("/v2/models/{name}/infer", AsgiEndpoint(infer), methods=["POST"]),   # other methods: 405
            Route("/v1/models/{name}/sample.{fmt:str}", sample),
            Route("/v1/models/{name}/apply", apply, methods=["POST"])]



def create_app(models: dict[str, OnnxGenerator | ImageModel], options: ServeOptions | None = None,
               workers: dict[str, int] | None = None):
    """The ASGI app serving `models` (name -> OnnxGenerator), each with workers[name] workers
    (default: options.workers)."""
    from starlette.applications import Starlette

    server = Server(models, options or ServeOptions(), workers or {})
    infer = infer_handler(server)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        server.start()
        yield
        server.stop()

    app = Starlette(routes=routes(server, infer), lifespan=lifespan)

    async def asgi(scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith("/v2/models/") \
                and path.endswith("/infer") and path.count("/") == 4:
            await infer(scope, receive, send)
        else:
            await app(scope, receive, send)

    return asgi


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or one line saying why not (a port in use, a host that does not
    resolve) before the server starts."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise GanPackError(f"cannot resolve --host {host!r} ({e}); give an address such as 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise GanPackError(f"port {port} on {host} is in use; stop what listens there or choose another "
                               f"--port") from None
        raise GanPackError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --host or --port") from None
    return sock


def deadline_protocol(timeout: float):
    """uvicorn's httptools protocol, closing a connection whose request headers have not all arrived
    `timeout` s after its request began (uvicorn has no such bound: a client trickling a byte at a
    time would hold the connection for ever). Without httptools, uvicorn's own protocol."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - the [serve] extra installs httptools
        return "auto"

    class HeaderDeadline(HttpToolsProtocol):
        timer = None

        def arm(self) -> None:
            if self.timer is None:
                self.timer = self.loop.call_later(timeout, self.expire)

        def disarm(self) -> None:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

        def expire(self) -> None:
            self.timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.arm()

        def on_message_begin(self) -> None:
            self.arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self.disarm()
            super().on_headers_complete()

        def connection_lost(self, exc) -> None:
            self.disarm()
            super().connection_lost(exc)

    return HeaderDeadline


def make_server(app, read_timeout_s: float = 30.0):
    """The uvicorn server of `app`: quiet, with the header deadline, 30 s to finish on SIGTERM."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30, access_log=False,
                            proxy_headers=False, http=deadline_protocol(read_timeout_s))
    return uvicorn.Server(config)


def run(app, sock: socket.socket, read_timeout_s: float = 30.0) -> None:
    """Serve `app` on the socket `listen` bound until Ctrl-C or SIGTERM."""
    make_server(app, read_timeout_s).run(sockets=[sock])
