from baton_ingest.main import run

run()
