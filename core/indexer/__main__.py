import sys

from core.indexer.cli import main

sys.exit(main())
