"""The web service: a JSON search API, gallery images by id, and one plain HTML page.

Every bad input is a 400 with a message a person can act on (FastAPI's default
for a malformed parameter is a 422 with a schema dump), and images are served
only by looking their id up in the index, so no request can name a file.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from fashion_search.search.engine import QueryError, SearchEngine

STATIC_DIR = Path(__file__).parent / "static"
MAX_RESULTS = 100  # per request, whatever k asks: a page never needs more and a huge k costs the server
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


READ = ["GET", "HEAD"]  # HEAD as every static server answers it: GET's status and headers, no body


class HeadWithoutBody:
    """ASGI middleware: a HEAD response keeps GET's status and headers (Content-Length included) but sends
    no body, whatever the server (uvicorn drops it; an ASGI app called directly would not)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: dict) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_headers_only)


def create_app(engine: SearchEngine) -> FastAPI:
    """The FastAPI app over an engine that is already loaded (the server starts it once)."""
    app = FastAPI(title="fashion-search", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(HeadWithoutBody)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"detail": f"bad parameter: {problems}"}, status_code=400)

    @app.api_route("/", methods=READ, include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.api_route("/health", methods=READ)
    def health() -> dict:
        return {"status": "ok", "model": engine.model_name, "gallery_size": engine.gallery_size,
                "examples": engine.examples}

    @app.api_route("/search", methods=READ)
    def search(q: str = "", k: int = 10) -> dict:
        try:
            hits = engine.search(q, min(k, MAX_RESULTS))
        except QueryError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        results = [{"rank": rank, "image_id": hit.image_id, "score": round(hit.score, 6),
                    "url": f"/images/{quote(hit.image_id, safe='')}"} for rank, hit in enumerate(hits, start=1)]
        return {"query": q, "model": engine.model_name, "gallery_size": engine.gallery_size, "k": len(results),
                "results": results}

    @app.api_route("/images/{image_id}", methods=READ)
    def image(image_id: str) -> FileResponse:
        path = engine.image_path(image_id)
        if path is None or not path.is_file():
            raise HTTPException(status_code=404, detail="no such image in the gallery")
        return FileResponse(path)

    return app
