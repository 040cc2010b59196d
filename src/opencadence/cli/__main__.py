import sys

from opencadence.cli import main

sys.exit(main())
