"""The ``baton`` command: a client of the services' APIs and of Kafka.

Each command group lives in its own module; this one only assembles them.
"""

from __future__ import annotations

import typer

from baton_cli.approvals import approvals_app
from baton_cli.audit import audit_app
from baton_cli.events import events_app
from baton_cli.identity import whoami
from baton_cli.policy import policy_app
from baton_cli.runs import runs_app
from baton_cli.stories import stories_app
from baton_cli.top import top
from baton_cli.topics import topics_app
from baton_cli.world import world_app

app = typer.Typer(help="Baton: Kafka-native workflow orchestration.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(stories_app, name="stories")
app.add_typer(approvals_app, name="approvals")
app.add_typer(runs_app, name="runs")
app.add_typer(audit_app, name="audit")
app.add_typer(events_app, name="events")
app.command("top")(top)
app.command("whoami")(whoami)
app.add_typer(policy_app, name="policy")
app.add_typer(world_app, name="world")

if __name__ == "__main__":
    app()
