from baton_approvals.main import run

run()
