"""``python -m bettorsense.sandbox --port 8765``: run the sandbox without Django."""

from bettorsense.sandbox.cli import main

raise SystemExit(main())
