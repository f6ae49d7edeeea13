"""Cloud Function entry points: react to every object finalized in the aletheia bucket,
and hand project members the run files the dashboard cannot read (``download``).

Deployed as a 2nd-gen function with an Eventarc trigger on
``google.cloud.storage.object.v1.finalized``; locally served by
functions-framework and fed by ``aletheia.devstack.eventbridge``. The logic lives in
the ``aletheia`` package (``aletheia.function.fileevents``) so paths and document
shapes are never copied here.
"""

from __future__ import annotations

import logging

import flask
import functions_framework
from cloudevents.http import CloudEvent

from aletheia.function import downloads, fileevents, instance, leases

log = logging.getLogger("aletheia.function")

#: When this instance's next data-file event also sweeps stale leases (from
#: ``ALETHEIA_SWEEP_EVERY_S``; default once a minute).
_event_sweeps = leases.SweepPacing.from_env()


@functions_framework.cloud_event
def on_object_finalized(event: CloudEvent) -> None:
    """Profile the finalized data file into ``Projects/{p}/Files/{sha256}``.

    Returns normally for every outcome recorded on the document (done,
    failed, unsupported, ignored); an exception (a live lease held by another
    worker, a transient backend error) makes the platform deliver again.
    """
    obj = dict(event.data or {})
    fileevents.handle_finalized(obj)
    # Only aletheia's data objects are the function's work, and the sweep rides on their
    # events, at most once a minute per instance. Every other object (the samples and
    # profiles it writes itself, manifests and diffs, another tool's files) costs no
    # Firestore request: the sweep is a query over every project's Files, which the
    # emulator answers by scanning them all.
    if fileevents.is_data_object(obj) and _event_sweeps.claim():
        _sweep(str(obj.get("bucket") or ""), leases.SWEEP_PER_EVENT)


@functions_framework.cloud_event
def sweep_stale_leases(event: CloudEvent) -> None:
    """Re-drive files whose worker died mid-profile (Cloud Scheduler, through Pub/Sub)."""
    del event  # the schedule's message carries nothing: the sweep reads Firestore
    _sweep(instance.bucket_name(), leases.SWEEP_PER_SCHEDULE)


@functions_framework.http
def download(request: flask.Request) -> flask.Response:
    """A project member's download of a run's diff, package list or artifact files (HTTP)."""
    return downloads.handle(request)


def _sweep(bucket: str, limit: int) -> None:
    """Best effort: a failing sweep must not turn the event into a redelivery."""
    if not bucket:
        return
    try:
        leases.sweep(instance.db(), instance.gcs(), bucket, limit)
    except Exception:
        log.exception("sweeping stale leases failed")
