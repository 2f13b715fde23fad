import sys

from faster_backend.cli import main

sys.exit(main())
