from tokwatch.cli import run

run()
