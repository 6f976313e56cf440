"""The web service: a JSON search API, gallery images by id, and one plain HTML page.

Every bad input is a 400 with a message a person can act on (FastAPI's default
for a malformed parameter is a 422 with a schema dump), a photo too large a 413 and
one that is no image a 415; images are served only by looking their id up in the
index, so no request can name a file. Every search answers in one shape: the results
with their captions and labels, and the filters with their counts (search/facets.py).
The OpenAPI description is at /openapi.json and its page at /docs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from fashion_search.config import has_visible_text
from fashion_search.search.engine import Answer, QueryError, SearchEngine
from fashion_search.search.facets import FilterError
from fashion_search.search.highlight import named_in
from fashion_search.search.upload import MAX_PHOTO_BYTES, UploadError, decode_photo, photo_bytes, read_bounded

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
# FastAPI's /docs page loads Swagger UI from its CDN with an inline start-up script; it shows no user data.
DOCS_CSP = ("default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
            "style-src https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:; connect-src 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")
RESERVED = {"q", "k"}  # every other query parameter is a filter


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


def filter_parameters(engine: SearchEngine) -> dict:
    """The OpenAPI description of the filters this gallery offers, with their values."""
    return {"parameters": [
        {"name": facet, "in": "query", "required": False, "style": "form", "explode": True,
         "description": f"{facet} filter, repeatable (any of the values): {', '.join(values)}",
         "schema": {"type": "array", "items": {"type": "string", "enum": list(values)}}}
        for facet, values in engine.facets.masks.items()]}


def create_app(engine: SearchEngine) -> FastAPI:
    """The FastAPI app over an engine that is already loaded (the server starts it once)."""
    app = FastAPI(title="fashion-search", redoc_url=None,
                  description="Natural-language fashion image search: words, a gallery image or a photo, "
                              "narrowed by filters from the labels.")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(HeadWithoutBody)
    filters_doc = filter_parameters(engine)

    def read(path: str, **options):
        """GET, and HEAD kept out of the OpenAPI description (one operation per endpoint there)."""
        def register(function):
            app.head(path, include_in_schema=False, **options)(function)
            return app.get(path, **options)(function)
        return register

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path == "/docs":
            response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    def chosen_filters(request: Request) -> dict[str, list[str]]:
        try:
            return engine.facets.parse((name, value) for name, value in request.query_params.multi_items()
                                       if name not in RESERVED)
        except FilterError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None

    def answered(answer: Answer, chosen: dict[str, list[str]], **extra) -> dict:
        results = [{"rank": rank, "image_id": hit.image_id,
                    "score": None if hit.score is None else round(hit.score, 6),
                    "url": f"/images/{quote(hit.image_id, safe='')}", "caption": engine.caption(hit.row),
                    "attributes": engine.facets.of_row(hit.row)} for rank, hit in enumerate(answer.hits, start=1)]
        return {**extra, "model": engine.model_name, "gallery_size": engine.gallery_size, "filters": chosen,
                "matching": answer.matching, "k": len(results), "results": results,
                "facets": engine.facets.counts(chosen)}

    def refused(error: QueryError) -> HTTPException:
        return HTTPException(status_code=400, detail=str(error))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"detail": f"bad parameter: {problems}"}, status_code=400)

    @app.api_route("/", methods=READ, include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @read("/health")
    def health() -> dict:
        """The model, the gallery size, the example queries, the filters offered, and the limits: the largest
        photo and the most results a request returns (a larger k is clamped to it)."""
        return {"status": "ok", "model": engine.model_name, "gallery_size": engine.gallery_size,
                "examples": engine.examples, "filters": engine.facets.names,
                "weak_match_threshold": engine.weak_match_threshold, "max_photo_bytes": MAX_PHOTO_BYTES,
                "max_results": MAX_RESULTS}

    @read("/facets", openapi_extra=filters_doc)
    def facets(request: Request) -> dict:
        """Every filter with its values, each counted under the other filters' choices."""
        chosen = chosen_filters(request)
        allowed = engine.facets.allowed(chosen)
        return {"filters": chosen, "matching": engine.gallery_size if allowed is None else int(allowed.sum()),
                "facets": engine.facets.counts(chosen)}

    @read("/search", openapi_extra=filters_doc)
    def search(request: Request, q: str = "", k: int = 10) -> dict:
        """The k best images for the words `q` among those the filters allow; with filters and no words,
        the matching images in gallery order. `weak_match` is true when even the best result scores under
        the threshold calibrated on the validation split (nothing matches well), false when it does not, and
        null when there are no words or the index has no threshold (the calibration found none that tells
        off-domain words from shopper queries: /health's `weak_match_threshold` is null then)."""
        chosen = chosen_filters(request)
        try:
            if chosen and not has_visible_text(q):
                return answered(engine.listing(min(k, MAX_RESULTS), chosen), chosen, query=q, named={},
                                weak_match=None)
            answer = engine.answer(q, min(k, MAX_RESULTS), chosen)
        except QueryError as error:
            raise refused(error) from None
        threshold = engine.weak_match_threshold
        weak = None if threshold is None or answer.best_cosine is None else answer.best_cosine < threshold
        return answered(answer, chosen, query=q, named=named_in(q, engine.facets), weak_match=weak)

    @read("/similar/{image_id}", openapi_extra=filters_doc)
    def similar(request: Request, image_id: str, k: int = 10) -> dict:
        """More like this: the gallery ranked by similarity to one of its images (that image left out).
        `weak_match` is null: the threshold is calibrated for word queries only."""
        chosen = chosen_filters(request)
        try:
            answer = engine.similar(image_id, min(k, MAX_RESULTS), chosen)
        except QueryError as error:
            raise refused(error) from None
        if answer is None:
            raise HTTPException(status_code=404, detail="no such image in the gallery")
        return answered(answer, chosen, image_id=image_id, named={}, weak_match=None)

    @app.post("/search/image", openapi_extra={
        **filters_doc, "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "image": {"type": "string", "format": "binary"}}}},
            "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
    async def search_image(request: Request, k: int = 10) -> dict:
        """Search by photo: a JPEG, PNG or WebP of at most 10 MB (413 beyond; 415 for anything else, judged
        by its bytes), as the `image` field of multipart/form-data or as the body itself. Read in memory,
        never written to disk; embedded once with the served model, then searched like words. `weak_match`
        is null: the threshold is calibrated for word queries only."""
        chosen = chosen_filters(request)
        if k < 1:
            raise HTTPException(status_code=400, detail=f"k must be at least 1, got {k}")
        try:
            body = await read_bounded(request.headers.get("content-length"), request.stream())
            content_type = request.headers.get("content-type", "")
            answer = await run_in_threadpool(  # decoding and embedding off the event loop
                lambda: engine.search_photo(decode_photo(photo_bytes(body, content_type)), min(k, MAX_RESULTS),
                                            chosen))
        except UploadError as error:
            raise HTTPException(status_code=error.status, detail=str(error)) from None
        return answered(answer, chosen, named={}, weak_match=None)

    @read("/images/{image_id}")
    def image(image_id: str) -> FileResponse:
        """The gallery image with that id (its file name); any other id is a 404."""
        path = engine.image_path(image_id)
        if path is None or not path.is_file():
            raise HTTPException(status_code=404, detail="no such image in the gallery")
        return FileResponse(path)

    return app
