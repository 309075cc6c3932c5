"""The whole service on one machine: local AWS, the API on localhost, and a demo training.

python -m chalicelib.local_service            # train a CISI minion, then keep serving
python -m chalicelib.local_service --no-demo  # only serve, for a browser or curl
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chalicelib.steps import STEPS, card_active_step

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "cisi"
POLL_SECONDS = 0.5
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class Api:
    """A tiny HTTP client for the local API (the demo talks to it as the web card would)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **headers: str
    ) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, dict(error.headers), json.loads(raw) if raw else None


def serve(host: str, port: int, log_requests: bool) -> Any:
    """Start the Chalice app on a background thread; returns the server to shut down."""
    from chalice.config import Config
    from chalice.local import ChaliceRequestHandler, create_local_server

    from app import app

    class QuietHandler(ChaliceRequestHandler):
        def log_message(self, *args: Any) -> None:
            """The demo's progress bar is the log; a request log would bury it."""

    config = Config.create(chalice_app=app)
    server = create_local_server(app, config, host, port)
    if not log_requests:
        server.server.RequestHandlerClass = functools.partial(
            QuietHandler, app_object=server.app_object, config=config
        )
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    return server


def upload_dataset(api: Api, folder: Path) -> str:
    """Upload a dataset folder as a client would: presigned URLs from the API, one per file.

    Returns the ``s3://`` URI of the uploaded folder. (``requests`` reaches the local S3: moto
    intercepts it in-process.)
    """
    import requests

    uri = ""
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        body = {"filename": path.name, "folder": folder.name}
        status, _, upload = api.call("POST", "/api/v2/dataset-uploads", body)
        if status != 201:
            raise RuntimeError(f"could not upload {path.name}: {upload}")
        requests.put(upload["upload_url"], data=path.read_bytes(), timeout=60).raise_for_status()
        uri = upload["folder_uri"]
    return uri


def render(job: dict[str, Any], width: int = 30) -> str:
    """One line as the web card would show it: the bar, and the step its formula makes active."""
    progress = float(job["progress"] or 0)
    active = min(card_active_step(progress), len(STEPS) - 1)
    filled = round(width * progress / 100)
    step = job["steps"][active]
    counters = ", ".join(f"{k} {v}" for k, v in sorted(step["counters"].items()))
    label = f"step {active + 1}/9 {STEPS[active].name}"
    if job["status"] in TERMINAL:
        label = job["status"]
    return f"[{'#' * filled}{'.' * (width - filled)}] {progress:6.2f}%  {label}  {counters}"


def run_demo(api: Api, dataset: str) -> int:
    status, _, minion = api.call("POST", "/api/v2/minions", {"name": "CISI librarian"})
    if status != 201:
        print(f"could not create the minion: {minion}", file=sys.stderr)
        return 1
    print(f"minion {minion['id']} created; training it on {dataset}")
    status, headers, job = api.call(
        "POST",
        "/api/v2/training-jobs",
        {"minion_id": minion["id"], "dataset": dataset},
        Idempotency_Key=f"demo-{minion['id']}",
    )
    if status != 202:
        print(f"could not start the training: {job}", file=sys.stderr)
        return 1
    location = headers["Location"]
    print(f"training job {job['id']} started: GET {location}")
    try:
        job = poll(api, location)
    except KeyboardInterrupt:
        print("\ncancelling the training ...")
        api.call("POST", f"{location}/cancel")
        raise
    print_outcome(api, minion["id"], job)
    return 0 if job["status"] == "SUCCEEDED" else 1


def poll(api: Api, location: str) -> dict[str, Any]:
    tty = sys.stdout.isatty()
    etag, job, last_line = "", None, ""
    while job is None or job["status"] not in TERMINAL:
        status, headers, body = api.call("GET", location, If_None_Match=etag)
        if status == 200:
            job, etag = body, headers.get("ETag", "")
            line = render(job)
            if line != last_line:
                print(("\r" if tty else "") + line, end="" if tty else "\n", flush=True)
                last_line = line
        time.sleep(POLL_SECONDS)
    if tty:
        print()
    return job


def print_outcome(api: Api, minion_id: str, job: dict[str, Any]) -> None:
    for step in job["steps"]:
        print(f"  {step['status']:>9}  {step['name']}: {step['message'] or ''}")
    if job["error"]:
        print(
            f"failed at {job['error']['step']}: {job['error']['type']}: {job['error']['message']}"
        )
        return
    metrics = job["metrics"]
    print(f"{'metric':<14}{'before':>10}{'after':>10}{'change':>10}")
    for name in ("ndcg_at_10", "recall_at_10", "mrr_at_10"):
        before = (metrics["before"] or {}).get(name, 0.0)
        after = (metrics["after"] or {}).get(name, 0.0)
        print(f"{name:<14}{before:>10.3f}{after:>10.3f}{after - before:>+10.3f}")
    question = "How do libraries classify books by subject?"
    _, _, answer = api.call(
        "POST", f"/api/v2/minions/{minion_id}/query", {"question": question, "k": 3}
    )
    print(f"\nQ: {question}")
    for hit in answer["hits"]:
        print(f"  {hit['score']:.4f}  [{hit['doc_id']}] {hit['title']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the knowledge base lives (default: a temporary folder, like moto's state)",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=DEFAULT_DATASET,
        help="a dataset folder to train the demo minion on (default: CISI)",
    )
    parser.add_argument("--no-demo", action="store_true", help="serve only")
    parser.add_argument(
        "--exit-after-demo", action="store_true", help="stop once the demo training has ended"
    )
    args = parser.parse_args(argv)
    if not args.no_demo and not args.dataset.is_dir():
        parser.error(f"--dataset {args.dataset}: not a folder (the demo uploads its files)")

    from chalicelib.local_aws import local_aws

    with tempfile.TemporaryDirectory() as scratch, local_aws(args.data_dir or Path(scratch)):
        server = serve(args.host, args.port, log_requests=args.no_demo)
        base = f"http://{args.host}:{args.port}"
        print(f"API on {base}/api/v2 (Ctrl-C stops it)")
        code = 0
        try:
            if not args.no_demo:
                api = Api(base)
                code = run_demo(api, upload_dataset(api, args.dataset))
                if args.exit_after_demo:
                    return code
                print(f"demo done; still serving on {base}/api/v2 (Ctrl-C stops it)")
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped")
        finally:
            server.shutdown()
        return code


if __name__ == "__main__":
    sys.exit(main())
