from tokwatch.launch import run

run()
