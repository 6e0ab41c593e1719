"""Stories used by the ingest tests."""

from __future__ import annotations

from baton_common.catalog import StoryCatalog
from baton_common.records import StoryPublished
from baton_common.story import Story, parse_story

TRIAGE = """
id: phishing-triage
version: 4
trigger:
  webhook: {path: edr-alerts, signature: {secret: EDR_WEBHOOK_SECRET}}
  when: event.severity in ["high", "critical"]
  dedup: {key: "{{ event.alert_id }}", window: 1h}
steps:
  lookup: {action: http, with: {url: "https://rep.example/{{ event.url }}"}}
"""

AUDIT_ALL = """
id: audit-all
version: 2
trigger:
  webhook: {path: edr-alerts}
steps:
  record: {action: http, with: {url: "https://log.example/"}}
"""

OPEN = """
id: open-hook
version: 1
trigger:
  webhook: {path: open}
steps:
  call: {action: http, with: {url: "https://x.example/"}}
"""


def story(text: str, **changes: object) -> Story:
    parsed = parse_story(text)
    if not changes:
        return parsed
    return Story.model_validate({**parsed.model_dump(by_alias=True), **changes})


def catalog_of(*stories: Story) -> StoryCatalog:
    catalog = StoryCatalog()
    for s in stories:
        catalog.add(StoryPublished(story=s, source="test"))
    return catalog
