"""``python -m forensic_face`` runs the command line."""

from forensic_face.cli import main

raise SystemExit(main())
