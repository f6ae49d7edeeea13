"""Cloud Function entry point: react to every object finalized in the aletheia bucket.

Deployed as a 2nd-gen function with an Eventarc trigger on
``google.cloud.storage.object.v1.finalized``; locally served by
functions-framework and fed by ``aletheia.eventbridge``. The logic lives in
the ``aletheia`` package (``aletheia.fileevents``) so paths and document
shapes are never copied here.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from aletheia.fileevents import handle_finalized


@functions_framework.cloud_event
def on_object_finalized(event: CloudEvent) -> None:
    """Profile the finalized data file into ``Projects/{p}/Files/{sha256}``.

    Returns normally for every outcome recorded on the document (done,
    failed, unsupported, ignored); an exception (a live lease held by another
    worker, a transient backend error) makes the platform deliver again.
    """
    handle_finalized(dict(event.data or {}))
