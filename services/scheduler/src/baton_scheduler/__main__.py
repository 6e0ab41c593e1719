from baton_scheduler.main import run

run()
