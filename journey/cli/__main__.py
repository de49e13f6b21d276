import sys

from journey.cli.main import main

sys.exit(main())
