from baton_executor.main import run

run()
