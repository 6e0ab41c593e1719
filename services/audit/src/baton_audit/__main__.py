from baton_audit.main import run

run()
