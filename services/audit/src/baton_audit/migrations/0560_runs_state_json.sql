-- ADR 0560: a run's state is stored as `json` (its text, checked to be JSON), not
-- `jsonb`. Every batch rewrites the state of each of its runs, and only Python reads it
-- back (no query looks inside it), so PostgreSQL's building of jsonb's binary form was
-- pure cost: about 40% of its CPU per event with runs interleaved. The state goes as
-- pydantic writes it; the checksum renders it as jsonb (admin.checksum), so a store's
-- checksum is the one it had before this migration, and a rebuild gives it again.
alter table runs alter column state type json using state::json;
