"""The HTTP API (FastAPI). Every route under /v1 needs the token; /openapi.json and /docs do not.

    GET    /v1/version                       version, compute device, executor
    POST   /v1/uploads                       declare an upload {"name", "size"}   (uploads.py)
    GET    /v1/uploads/ID                    how many bytes arrived (to resume)
    PUT    /v1/uploads/ID?offset=N           bytes at N (application/octet-stream)
    POST   /v1/uploads/ID/complete           check the footage
    DELETE /v1/uploads/ID
    POST   /v1/jobs                          {"upload_id", "settings"} -> a queued job
    GET    /v1/jobs                          every job's status
    GET    /v1/jobs/ID                       {"state", "stages" (job.json), "error", "queue_position", ...}
    GET    /v1/jobs/ID/progress?offset=N     progress.jsonl events since byte N, and the next offset
    GET    /v1/jobs/ID/events?offset=N       the same as server-sent events, until the job finishes
    POST   /v1/jobs/ID/cancel                stop it (finished stages are kept)
    POST   /v1/jobs/ID/resume                run a failed or cancelled job again (finished stages skipped)
    GET    /v1/jobs/ID/download              the job folder as a zip (streamed)
    GET    /v1/jobs/ID/files[/PATH]          list the job's files, or one of them
    DELETE /v1/jobs/ID                       cancel if needed, then remove it
"""
from __future__ import annotations

import asyncio
import json
import os
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from backend import __version__
from exporters.job_manifest import read_progress

from . import API_VERSION, archive
from .auth import RequestGuard, TokenCheck
from .config import ServerConfig
from .errors import ApiError
from .jobs import FINISHED, JobStore
from .jobspec import JobSettings
from .names import BadName, file_in_folder, walk_regular_files
from .pool import JobQueue
from .uploads import UploadStore

SSE_POLL = 0.25          # seconds between looks at progress.jsonl for a server-sent-events stream
SSE_KEEPALIVE = 15.0
MAX_STREAMS = 64


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=255, description="file name: a video (shot.mp4) or a zip of images (plates.zip)")
    size: int = Field(ge=1, description="bytes that will be sent")


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upload_id: str = Field(max_length=64, description="a complete upload; it becomes the job's footage")
    settings: JobSettings = Field(default_factory=JobSettings)


def _json(obj, status: int = 200) -> Response:
    """A JSON response without FastAPI's encoder pass (status polls are the hot path)."""
    return Response(json.dumps(obj), status_code=status, media_type="application/json")


def create_app(config: ServerConfig, token: str, executor) -> FastAPI:
    store, uploads = JobStore(config), UploadStore(config)
    queue = JobQueue(store, executor, config.slots)
    facts: dict = {}
    streams = {"open": 0}

    @asynccontextmanager
    async def lifespan(app):
        uploads.remove_stale()
        store.load()
        resumed = queue.start()
        if resumed:
            print(f"shotfield serve: resuming {resumed} unfinished job(s)", flush=True)
        yield
        await run_in_threadpool(queue.shutdown)

    app = FastAPI(title="Shotfield server", version=__version__, lifespan=lifespan,
                  description=__doc__.split("\n\n")[0] + "\n\nSend `Authorization: Bearer <token>` (ROOT/token).")
    app.add_middleware(RequestGuard, rate=config.rate_limit, burst=config.rate_burst)
    app.state.queue, app.state.store = queue, store

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return Response(json.dumps({"detail": exc.detail}), status_code=exc.status, media_type="application/json",
                        headers=exc.headers)

    api = APIRouter(prefix="/v1", dependencies=[Depends(TokenCheck(token))])

    @api.get("/version")
    async def version():
        """The server's version and the compute device its jobs get (found out on the first call)."""
        if "device" not in facts:
            facts.setdefault("probe", asyncio.get_running_loop().run_in_executor(None, executor.describe))
            try:
                facts["device"] = await asyncio.wait_for(asyncio.shield(facts["probe"]), 20.0)
            except asyncio.TimeoutError:
                return {"version": __version__, "api": API_VERSION, "device": "checking", "workers": config.slots}
        return {"version": __version__, "api": API_VERSION, "device": facts["device"], "workers": config.slots}

    # -- uploads ----------------------------------------------------------------------------------------
    @api.post("/uploads", status_code=201)
    async def create_upload(body: UploadCreate):
        return _json(uploads.create(body.name, body.size).public(0), 201)

    @api.get("/uploads/{upload_id}")
    async def upload_status(upload_id: str):
        upload = uploads.get(upload_id)
        return _json(upload.public(uploads.received(upload)))

    @api.put("/uploads/{upload_id}", openapi_extra={"requestBody": {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def upload_bytes(upload_id: str, request: Request, offset: int = Query(ge=0)):
        length = request.headers.get("content-length")
        if length is not None and not length.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        return _json(await uploads.receive(upload_id, offset, int(length) if length else None, request.stream()))

    @api.post("/uploads/{upload_id}/complete")
    async def complete_upload(upload_id: str):
        upload = await run_in_threadpool(uploads.complete, upload_id)
        return _json(upload.public(upload.size))

    @api.delete("/uploads/{upload_id}", status_code=204)
    async def delete_upload(upload_id: str):
        uploads.get(upload_id)
        uploads.delete(upload_id)
        return Response(status_code=204)

    # -- jobs -----------------------------------------------------------------------------------------
    def status(record) -> dict:
        return store.status(record, queue.position(record.id))

    @api.post("/jobs", status_code=201)
    async def create_job(body: JobCreate):
        body.settings.check()
        upload = uploads.get(body.upload_id)
        if upload.state != "complete":
            raise ApiError(409, f"upload {upload.id} is not complete; POST /v1/uploads/{upload.id}/complete first")
        record = store.create(upload.name, upload.footage, upload.info or {},
                              body.settings.model_dump(exclude_none=True))
        try:
            uploads.take(upload.id, store.footage_path(record).parent)
        except BaseException:
            store.delete(record.id)
            raise
        queue.submit(record)
        return _json(status(record), 201)

    @api.get("/jobs")
    async def list_jobs():
        return _json({"jobs": [status(r) for r in store.all()]})

    @api.get("/jobs/{job_id}")
    async def job_status(job_id: str):
        return _json(status(store.get(job_id)))

    @api.get("/jobs/{job_id}/progress")
    async def job_progress(job_id: str, offset: int = Query(0, ge=0)):
        store.get(job_id)
        events, offset = read_progress(store.job_dir(job_id), offset)
        return _json({"events": events, "offset": offset})

    @api.get("/jobs/{job_id}/events", response_class=StreamingResponse)
    async def job_events(job_id: str, request: Request, offset: int = Query(0, ge=0)):
        store.get(job_id)
        if streams["open"] >= MAX_STREAMS:
            raise ApiError(429, f"{MAX_STREAMS} event streams are open; poll /progress instead")
        start = request.headers.get("last-event-id", "")
        return StreamingResponse(_events(job_id, int(start) if start.isdigit() else offset),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def _events(job_id: str, offset: int):
        streams["open"] += 1
        try:
            last_state, quiet = None, 0.0
            while True:
                events, offset = read_progress(store.job_dir(job_id), offset)
                for i, event in enumerate(events):
                    tag = f"id: {offset}\n" if i == len(events) - 1 else ""
                    yield f"event: progress\n{tag}data: {json.dumps(event)}\n\n"
                record = store.find(job_id)
                if record is None:
                    yield "event: deleted\ndata: {}\n\n"
                    return
                if record.state != last_state:
                    last_state = record.state
                    yield f"event: state\ndata: {json.dumps(status(record))}\n\n"
                if record.state in FINISHED:
                    return
                quiet = 0.0 if events else quiet + SSE_POLL
                if quiet >= SSE_KEEPALIVE:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await asyncio.sleep(SSE_POLL)
        finally:
            streams["open"] -= 1

    @api.post("/jobs/{job_id}/cancel", status_code=202)
    async def cancel_job(job_id: str):
        record = store.get(job_id)
        if record.state in FINISHED:
            raise ApiError(409, f"job {job_id} is {record.state}; there is nothing to cancel")
        queue.cancel(record)
        return _json(status(record), 202)

    @api.post("/jobs/{job_id}/resume", status_code=202)
    async def resume_job(job_id: str):
        record = store.get(job_id)
        if record.state not in ("failed", "cancelled"):
            raise ApiError(409, f"job {job_id} is {record.state}; only failed or cancelled jobs resume")
        queue.resume(record)
        return _json(status(record), 202)

    @api.get("/jobs/{job_id}/download", response_class=StreamingResponse)
    async def download_job(job_id: str):
        record = store.get(job_id)
        folder = store.job_dir(job_id)
        stem = os.path.splitext(record.name)[0]
        headers = {"Content-Disposition": f'attachment; filename="{stem}-{job_id}.zip"',
                   "X-Shotfield-Content-Bytes": str(await run_in_threadpool(archive.folder_size, folder))}
        return StreamingResponse(archive.zip_folder(folder), media_type="application/zip", headers=headers)

    @api.get("/jobs/{job_id}/files")
    async def list_files(job_id: str):
        store.get(job_id)
        files = [{"path": rel, "size": size} for _, rel, size in walk_regular_files(store.job_dir(job_id))]
        return _json({"files": files})

    @api.get("/jobs/{job_id}/files/{path:path}", response_class=FileResponse)
    async def get_file(job_id: str, path: str):
        store.get(job_id)
        try:
            target = file_in_folder(store.job_dir(job_id), path)
        except BadName as exc:
            raise ApiError(400, str(exc)) from None
        except (FileNotFoundError, NotADirectoryError):
            raise ApiError(404, f"job {job_id} has no file {path!r}") from None
        return FileResponse(target)

    @api.delete("/jobs/{job_id}", status_code=204)
    async def delete_job(job_id: str):
        record = store.get(job_id)
        if record.state not in FINISHED:
            queue.cancel(record)
            if not await run_in_threadpool(queue.wait_idle, job_id, 90.0):
                raise ApiError(409, f"job {job_id} did not stop in time; try again")
        await run_in_threadpool(store.delete, job_id)
        return Response(status_code=204)

    app.include_router(api)
    return app
