import sys

from lmt.cli import main

sys.exit(main())
