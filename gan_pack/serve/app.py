"""`ganpack serve`: generators over HTTP in the Open Inference Protocol (KServe v2 REST, Triton's HTTP
API), with a dynamic batcher. Torch-free: Starlette + uvicorn (the [serve] extra); the protocol's
encoding is protocol.py, the batching batcher.py, the models and workers layout.py.

- GET /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, /v2/models/NAME/ready
- POST /v2/models/NAME/infer: JSON tensors, or the binary tensor data extension (what tritonclient
  sends by default); errors as {"error": "..."} with 400, 404, 413 or 503
- GET /v1/models/NAME/sample.png?n=16&label=3&seed=1 (and sample.npy): seeded like `ganpack sample`
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor

import gan_pack
from gan_pack.errors import ModelError
from gan_pack.runtime.generator import OnnxGenerator
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


class Server:
    """The served models, their batchers, and the handlers of every endpoint."""

    def __init__(self, models: dict[str, OnnxGenerator], options: ServeOptions, workers: dict[str, int]):
        self.models, self.options = models, options
        self.workers = {name: workers.get(name, options.workers) for name in models}
        self.executor = ThreadPoolExecutor(max_workers=max(1, sum(self.workers.values())),
                                           thread_name_prefix="onnxruntime", initializer=lower_priority)
        self.batchers: dict[str, Batcher] = {}
        self.tasks: list[asyncio.Task] = []

    def named(self, name: str) -> OnnxGenerator:
        if name not in self.models:
            raise HTTPError(404, f"unknown model {name!r}; this server has {', '.join(sorted(self.models))}")
        return self.models[name]

    def start(self) -> None:
        for name, g in self.models.items():
            batcher = Batcher(g, self.options, self.executor, self.workers[name])
            self.batchers[name] = batcher
            self.tasks += [asyncio.create_task(batcher.run()) for _ in range(batcher.workers)]

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.executor.shutdown(wait=True)

    # ------------------------------------------------------------ handlers: (status, body dict)

    async def live(self, params: dict, query) -> dict:
        return {"live": True}

    async def ready(self, params: dict, query) -> dict:
        return {"ready": bool(self.batchers)}

    async def server(self, params: dict, query) -> dict:
        return {"name": "gan_pack", "version": gan_pack.__version__, "extensions": ["binary_tensor_data"]}

    async def metadata(self, params: dict, query) -> dict:
        return model_metadata(params["name"], self.named(params["name"]))

    async def model_ready(self, params: dict, query) -> dict:
        self.named(params["name"])
        return {"name": params["name"], "ready": params["name"] in self.batchers}

    async def sample(self, name: str, fmt: str, query) -> tuple[bytes, str]:
        g = self.named(name)
        if fmt not in ("png", "npy"):
            raise HTTPError(404, f"sample.{fmt}: ask for sample.png (a grid) or sample.npy (an array)")
        request = SampleQuery.parse(query, self.options.max_images_per_request)
        images = await self.batchers[name].submit(request.feeds(g), request.n)
        rows = 10 if g.info.num_classes and request.label is None else None
        return sample_body(images, fmt, rows)

    async def infer(self, name: str, body: bytes, header: str | None) -> tuple[int, bytes, dict]:
        """POST /v2/models/NAME/infer: (status, body, headers), errors as {"error": ...}."""
        try:
            parsed, feeds, count = parse_infer(body, header, self.named(name), self.options.max_images_per_request)
            content, headers = infer_response(name, parsed, await self.batchers[name].submit(feeds, count))
            return 200, content, headers
        except (HTTPError, ModelError) as e:
            status = e.status if isinstance(e, HTTPError) else 400
            return status, json.dumps({"error": str(e)}).encode(), {"content-type": "application/json"}


async def read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def infer_handler(server: Server):
    """POST /v2/models/NAME/infer as a bare ASGI handler: requests skip Starlette's routing,
    middleware and Request objects on this hot path."""

    async def handle(scope, receive, send) -> None:
        name = scope["path"][len("/v2/models/"):-len("/infer")]
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == HEADER.lower().encode()), None)
        status, content, headers = await server.infer(name, await read_body(receive), header)
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": raw + [(b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})
    return handle


class AsgiEndpoint:
    """A Starlette route endpoint that is a bare ASGI callable rather than a request handler."""

    def __init__(self, handler):
        self.handler = handler

    async def __call__(self, scope, receive, send) -> None:
        await self.handler(scope, receive, send)


def routes(server: Server, infer) -> list:
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def json_route(path: str, handler) -> Route:
        async def endpoint(request):
            try:
                return JSONResponse(await handler(request.path_params, request.query_params))
            except HTTPError as e:
                return JSONResponse({"error": str(e)}, status_code=e.status)
        return Route(path, endpoint)

    async def sample(request):
        try:
            body, media = await server.sample(request.path_params["name"], request.path_params["fmt"],
                                              request.query_params)
            return Response(body, media_type=media)
        except (HTTPError, ModelError) as e:
            return JSONResponse({"error": str(e)}, status_code=e.status if isinstance(e, HTTPError) else 400)

    return [json_route("/v2/health/live", server.live), json_route("/v2/health/ready", server.ready),
            json_route("/v2", server.server), json_route("/v2/models/{name}", server.metadata),
            json_route("/v2/models/{name}/ready", server.model_ready),
            Route("/v2/models/{name}/infer", AsgiEndpoint(infer), methods=["POST"]),   # other methods: 405
            Route("/v1/models/{name}/sample.{fmt:str}", sample)]


def create_app(models: dict[str, OnnxGenerator], options: ServeOptions | None = None,
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


def run(app, host: str, port: int) -> None:
    """Serve `app` with uvicorn until Ctrl-C or SIGTERM (30 s to finish the requests in flight)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30, access_log=False,
                proxy_headers=False)
