import sys

from .pty_server import main

sys.exit(main())
