"""`fashion-search query` and `fashion-search serve`: the search from a terminal or a browser.

The heavy imports (torch, the model, FastAPI) happen inside the commands, so that
`fashion-search --help` and the other commands stay instant.
"""

from __future__ import annotations

from fashion_search.errors import UsageError

import argparse
import os
from pathlib import Path

DEFAULT_INDEX = Path("models/index")
DEFAULT_HOST = "127.0.0.1"  # local only; pass --host 0.0.0.0 to expose it on purpose
DEFAULT_PORT = 8000


def add_search_commands(commands: argparse._SubParsersAction) -> None:
    """Register `query` and `serve` on the CLI's subcommands; each sets `handler`."""
    query = commands.add_parser("query", help="search the gallery from the terminal")
    query.add_argument("text", help='what to look for, e.g. "a red dress"')
    query.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    query.add_argument("--grid", type=Path, help="also write a PNG of the results here")
    query.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="the index stage's output")
    query.add_argument("--exact", action="store_true", help="search by matmul instead of the FAISS index")
    query.set_defaults(handler=run_query)
    serve = commands.add_parser("serve", help="the web page and JSON API (http://127.0.0.1:8000)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="1-65535 (default 8000)")
    serve.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="the index stage's output")
    serve.set_defaults(handler=run_serve)
    shots = commands.add_parser("screenshots", help="pictures of the web page answering queries (for the README)")
    shots.add_argument("queries", nargs="+", help='e.g. "denim shorts" "a red dress"')
    shots.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="the index stage's output")
    shots.add_argument("--out", type=Path, default=Path("reports"), help="folder for page_<query>.png")
    shots.set_defaults(handler=run_screenshots)


def port_number(text: str) -> int:
    """A TCP port a server can listen on; argparse turns the error into one line naming --port."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def check_grid_path(out: Path) -> None:
    """Before any work: --grid must name a file in a folder that can be written (made if missing)."""
    if out.is_dir():
        raise UsageError(f"--grid {out} is a folder; give a file name such as {out / 'results.png'}")
    folder = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--grid {out}: {folder} cannot be written; give a path in a writable folder")


def run_query(args: argparse.Namespace) -> None:
    from fashion_search.stage import run

    run(lambda: print_results(args))


def print_results(args: argparse.Namespace) -> None:
    from fashion_search.search.engine import SearchEngine

    if args.grid is not None:
        check_grid_path(args.grid)
    engine = SearchEngine.open(args.index, exact=args.exact)
    hits = engine.search(args.text, args.k)
    print(f"{len(hits)} of {engine.gallery_size} images, model {engine.model_name}, {engine.backend} search")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>4}  {hit.score:+.4f}  {hit.image_id}")
    if args.grid is not None:
        write_grid(engine.model_name, args.text, hits, args.grid)
        print(f"grid written to {args.grid}")


def write_grid(model: str, query: str, hits: list, out: Path) -> None:
    from fashion_search.atomic import atomic_path
    from fashion_search.evaluate.grid import draw_grid

    try:
        with atomic_path(out) as tmp:
            draw_grid([(model, query, [(hit.path, hit.score, None) for hit in hits])], tmp, columns=max(1, len(hits)))
    except OSError as error:
        raise UsageError(f"--grid {out}: cannot write it ({error.strerror or error}); give a path in a writable "
                         "folder") from None


def run_serve(args: argparse.Namespace) -> None:
    from fashion_search.stage import run

    run(lambda: serve(args.index, args.host, args.port))


def serve(index: Path, host: str, port: int) -> None:
    import uvicorn

    from fashion_search.search.app import create_app
    from fashion_search.search.engine import SearchEngine

    engine = SearchEngine.open(index)
    print(f"serving {engine.gallery_size} images with {engine.model_name} ({engine.backend} search) "
          f"on http://{host}:{port}/")
    uvicorn.run(create_app(engine), host=host, port=port, log_level="info")


def run_screenshots(args: argparse.Namespace) -> None:
    from fashion_search.stage import run

    def capture() -> None:
        from fashion_search.search.screenshots import capture_queries

        for path in capture_queries(args.index, args.queries, args.out):
            print(path)

    run(capture)
