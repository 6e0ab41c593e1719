"""``WebhookFastPath`` answers webhooks itself and leaves every other request to the app.

Every webhook behaviour (auth, signatures, limits, refusals, metrics) is proved through
both the fast path and the plain route by the ``webhook_path`` fixture in
``test_ingest_api.py`` and ``test_ingest_auth.py``.
"""

from __future__ import annotations

from .test_ingest_api import make_intake


async def test_the_fast_path_answers_webhooks_alone_and_passes_anything_else_on() -> None:
    async with make_intake(with_route=False) as intake:  # no route: only the fast path
        accepted = await intake.client.post("/webhooks/open", json={"alert_id": "a-1"})
        refused = await intake.client.post("/webhooks/nobody", json={})
        nested = await intake.client.post("/webhooks/open/more", json={})
        other_method = await intake.client.get("/webhooks/open")

    assert accepted.status_code == 202
    assert len(intake.publisher.published) == 1
    assert refused.status_code == 404
    assert "no active story listens" in refused.json()["detail"]
    assert nested.status_code == 404
    assert nested.json() == {"detail": "Not Found"}
    assert other_method.status_code == 404
