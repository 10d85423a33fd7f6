from tokwatch.cli import main

raise SystemExit(main())
