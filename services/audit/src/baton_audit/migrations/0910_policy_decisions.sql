-- Governance (ADR 0910, 0911): policy decisions are events of baton.runs (already in
-- `events`); this index makes "what did policy P version V deny last month?" a range scan.
create index events_policy_decisions
    on events ((data -> 'decision' ->> 'policy_id'), time)
    where type in ('baton.policy.denied.v1', 'baton.policy.evaluated.v1');

-- Change control: who approved which draft story version (StoryApproved on baton.stories).
create table story_approvals (
    story_id text not null,
    version integer not null,
    approver text not null,
    author text,
    comment text,
    approved_at timestamptz not null,
    event_id text not null,
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    primary key (story_id, version, approver)
);
