-- ADR 0550: a run's state is stored without the model fields that hold None (pydantic's
-- exclude_none: at the state's level, its steps' and its timers'; a JSON payload inside
-- it, such as a trigger or an output, keeps its nulls). The same state reads back: an
-- absent field takes its default, None. A state is rewritten by every batch holding one
-- of its run's events, so the smaller document is less for PostgreSQL to parse and log.
-- Rows written before are rewritten here, so a rebuild gives the checksum they give.
update runs set state = (
    select coalesce(jsonb_object_agg(key, case
        when key in ('steps', 'timers') then (
            select coalesce(jsonb_object_agg(name, (
                select coalesce(jsonb_object_agg(field, v), '{}'::jsonb)
                from jsonb_each(item) as f (field, v)
                where jsonb_typeof(v) <> 'null'
            )), '{}'::jsonb)
            from jsonb_each(value) as i (name, item)
        )
        else value end), '{}'::jsonb)
    from jsonb_each(state) as s (key, value)
    where jsonb_typeof(value) <> 'null'
)
where jsonb_typeof(state) = 'object';
