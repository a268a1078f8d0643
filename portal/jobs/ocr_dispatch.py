"""Put the images an upload marked 识别中 on the RQ queue ``recognise`` as soon as the upload commits.

Loaded by the app factory, so every process that saves uploads (web, API, CLI) has the hooks. Without
``REDIS_URL`` nothing is sent: the next pass of the in-process runner finds the images due.
"""
from __future__ import annotations

from flask import has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from .. import ocr_jobs, ocr_state
from . import log, redis_url


@sa_event.listens_for(Session, "after_commit")
def _queue_marked_images(session: Session) -> None:
    """With Redis, put the images an upload just marked 识别中 on queue ``recognise`` (else the next pass runs them)."""
    ids = ocr_state.take_marked(session)
    if not ids or not has_app_context() or not redis_url():
        return
    try:
        from . import redis_queue  # only a deployment with Redis needs the rq package

        conn = redis_queue.connect()
        try:
            for image_id in sorted(ids):
                redis_queue.enqueue(conn, "recognise_image", image_id, job_id=ocr_jobs.job_id(image_id),
                                    rerun_started=True)
        finally:
            conn.close()
    except Exception:  # Redis away: the image stays queued in the DB and the next dispatching pass sends it
        log.warning("could not queue OCR of images %s", sorted(ids), exc_info=True)


@sa_event.listens_for(Session, "after_rollback")
def _forget_marked_images(session: Session) -> None:
    ocr_state.take_marked(session)
