from baton_world.main import run

run()
