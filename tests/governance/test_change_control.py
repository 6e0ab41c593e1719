"""Change control: a draft goes live only after someone other than its author approves.

The catalog tests are pure; the CLI tests publish and approve through the real Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from platform_kit import topic_env
from typer.testing import CliRunner, Result

from baton_cli.main import app
from baton_common.catalog import StoryCatalog
from baton_common.kafka import make_consumer, read_to_end
from baton_common.records import StoryApproved, StoryPublished
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics

from .policies import TRIAGE

CONTROLLED = TRIAGE.model_copy(update={"id": "guarded", "version": 2})


def draft(author: str = "alice") -> StoryPublished:
    return StoryPublished(story=CONTROLLED, source="", author=author, draft=True, reviewers=1)


def test_a_draft_is_not_live() -> None:
    catalog = StoryCatalog()
    catalog.add(draft())
    assert catalog.get("guarded") is None
    assert catalog.get("guarded", 2) is None
    assert list(catalog.active()) == []
    assert catalog.published("guarded", 2) is not None


def test_the_authors_own_approval_does_not_count() -> None:
    catalog = StoryCatalog()
    catalog.add(draft())
    reason = catalog.approve(StoryApproved(story_id="guarded", version=2, approver="alice"))
    assert reason == "alice is the author of guarded v2"
    assert catalog.get("guarded") is None


def test_another_persons_approval_makes_it_live() -> None:
    catalog = StoryCatalog()
    older = TRIAGE.model_copy(update={"id": "guarded", "version": 1})
    catalog.add(StoryPublished(story=older, source=""))
    catalog.add(draft())
    assert catalog.get("guarded") == older  # the live version stays in force meanwhile
    assert catalog.approve(StoryApproved(story_id="guarded", version=2, approver="bob")) is None
    assert catalog.get("guarded") == CONTROLLED
    assert catalog.get("guarded", 2) == CONTROLLED


def test_an_approval_read_before_its_draft_still_counts() -> None:
    catalog = StoryCatalog()
    catalog.approve(StoryApproved(story_id="guarded", version=2, approver="bob", author="alice"))
    catalog.add(draft())
    assert catalog.get("guarded") == CONTROLLED


GUARDED_YAML = """
id: guarded
version: 1
owner: secops
trigger: {webhook: {path: guarded}}
steps:
  lookup: {action: http, with: {url: "https://api.good.example/x"}}
"""
POLICY_YAML = """
id: change
version: 1
workflow:
  publish: [{teams: [secops]}]
  change_control: {stories: ["*"], reviewers: 1}
"""


@pytest.mark.integration
def test_the_author_cannot_approve_a_publish_through_the_cli(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    names = topic_env(f"cc{uuid.uuid4().hex[:8]}")
    topics = TopicSettings.model_validate(
        {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in names.items()}
    )
    asyncio.run(provision_topics(kafka_bootstrap, topics))
    env = {"BATON_KAFKA_BOOTSTRAP": kafka_bootstrap, **names}
    story_file, policy_file = tmp_path / "guarded.yaml", tmp_path / "change.yaml"
    story_file.write_text(GUARDED_YAML)
    policy_file.write_text(POLICY_YAML)

    def cli(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    published = cli("policy", "publish", str(policy_file), "--as", "admin")
    assert published.exit_code == 0, published.output
    refused = cli("stories", "publish", str(story_file), "--as", "mallory", "--team", "interns")
    assert refused.exit_code == 1
    assert "refused by policy" in refused.output
    assert "team interns may not publish guarded" in refused.output

    out = cli("stories", "publish", str(story_file), "--as", "alice")
    assert out.exit_code == 0, out.output
    assert "guarded:1 published as a draft" in out.output

    own = cli("stories", "approve", "guarded:1", "--as", "alice")
    assert own.exit_code == 1
    assert (
        "alice is the author of guarded:1: change control needs an approval by someone other "
        "than the author"
    ) in own.output

    other = cli("stories", "approve", "guarded:1", "--as", "bob", "-m", "reviewed")
    assert other.exit_code == 0, other.output
    assert "approved by bob (1 of 1 approval(s)): live" in other.output

    catalog = asyncio.run(_catalog(kafka_bootstrap, topics))
    story = catalog.get("guarded")
    assert story is not None
    assert story.version == 1
    published_record = catalog.published("guarded", 1)
    assert published_record is not None
    assert published_record.author == "alice"
    assert published_record.policy is not None
    assert {d.rule for d in published_record.policy} >= {
        "workflow.publish",
        "workflow.change_control",
    }


async def _catalog(bootstrap: str, topics: TopicSettings) -> StoryCatalog:
    """The catalog a scheduler would build from the topic: the approval is in the log."""
    catalog = StoryCatalog()
    consumer = make_consumer(bootstrap, topics.stories, group_id=None, client_id="test")
    await consumer.start()
    try:
        async for record in read_to_end(consumer):
            assert catalog.apply(record) is None
    finally:
        await consumer.stop()
    return catalog
